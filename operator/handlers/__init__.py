"""Thin Kopf handlers: parse, delegate to ipam, write once."""

"""Kopf glue: each handler parses what Kopf hands it and calls the one controller that owns it."""

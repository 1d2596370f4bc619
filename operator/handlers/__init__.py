"""Kopf glue: each handler parses what Kopf hands it and calls its one owner (a controller,
or the dispatcher for Service work)."""

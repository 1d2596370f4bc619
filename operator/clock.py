"""The one clock for timestamps the API server reads."""

from __future__ import annotations

import datetime


def timestamp(*, micro: bool = False) -> str:
    """Now in UTC as RFC 3339: metav1.Time, or metav1.MicroTime with ``micro``."""
    pattern = "%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ"
    return datetime.datetime.now(datetime.UTC).strftime(pattern)

"""Time as users write and read it: durations like ``90s``, ``10m`` or ``1h30m``, and instants."""

from __future__ import annotations

import datetime
import re

_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
# Longer than any hold anyone means: a typo of units (600h for 600s) is refused.
MAX_DURATION = 366 * 24 * 3600


def parse_duration(text: str, field: str) -> float:
    """Seconds in ``text`` (hours, minutes and seconds, in that order, like ``1h30m``, or
    ``0``); ValueError with a user-facing message naming ``field`` otherwise."""
    match = _DURATION.fullmatch(text)
    if text == "0":
        return 0.0
    if not text or match is None:
        raise ValueError(f'{field}: "{text}" is not a duration like 90s, 10m or 1h30m')
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total > MAX_DURATION:
        raise ValueError(f'{field}: "{text}" is longer than 8784h (366 days)')
    return float(total)


def stamp(seconds: float) -> str:
    """An instant, given in seconds since the epoch, as RFC 3339 in UTC, to the second."""
    instant = datetime.datetime.fromtimestamp(int(seconds), datetime.UTC)
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_stamp(text: str) -> float | None:
    """Seconds since the epoch of an RFC 3339 instant; None when ``text`` is not one."""
    try:
        instant = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if instant.tzinfo is None:
        return None
    return instant.timestamp()

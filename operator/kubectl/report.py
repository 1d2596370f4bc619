"""What every command hands back: data for -o json|yaml, lines for the table, and a verdict."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lbipam.kubectl.render import Style, age, table

CONDITION_TONES = {"Ready": "good", "Allocated": "good"}


@dataclass
class Report:
    data: Any
    lines: list[str] = field(default_factory=list)
    ok: bool = True  # False: the command exits 1


def condition_text(condition: Mapping[str, Any], style: Style) -> str:
    """`Ready=False Conflict: the pool overlaps ...`, coloured by how good it is."""
    kind, status, reason = (
        condition.get("type", ""),
        condition.get("status", ""),
        condition.get("reason", ""),
    )
    good = (kind, status) in {
        ("Ready", "True"),
        ("Exhausted", "False"),
        ("OverlapsServiceCIDR", "False"),
        ("OverlapsNodeAddress", "False"),
    }
    head = style(f"{kind}={status} {reason}", "good" if good else "bad")
    message = condition.get("message") or ""
    return f"{head}: {message}" if message else head


def event_lines(
    events: list[Mapping[str, Any]], style: Style, indent: str = "  ", with_object: bool = False
) -> list[str]:
    """Events as `kubectl describe` lists them: age, type, reason, (object,) message."""
    rows = [
        [
            age(e.get("lastTimestamp") or ""),
            style(e.get("type") or "", "warn" if e.get("type") == "Warning" else "dim"),
            e.get("reason") or "",
            *([e.get("object") or ""] if with_object else []),
            e.get("message") or "",
        ]
        for e in events
    ]
    headers = ["AGE", "TYPE", "REASON", *(["OBJECT"] if with_object else []), "MESSAGE"]
    return table(headers, rows, indent)

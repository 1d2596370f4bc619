"""Conditions in the metav1.Condition shape, set the way apimachinery's SetStatusCondition does."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lbipam.clock import timestamp

# What makes a condition news; lastTransitionTime and observedGeneration follow from these.
_COMPARED = ("status", "reason", "message")


def condition(
    kind: str, ok: bool, reason: str, message: str, generation: int | None = None
) -> dict[str, Any]:
    """A condition without lastTransitionTime; `set_condition` stamps it."""
    made: dict[str, Any] = {
        "type": kind,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
    }
    if generation is not None:
        made["observedGeneration"] = generation
    return made


def set_condition(
    conditions: Iterable[Mapping[str, Any]], new: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], bool]:
    """`conditions` with `new` in place of its type, and whether status, reason or message moved.

    lastTransitionTime is kept while the status stays, and stamped now when it changes.
    """
    result: list[dict[str, Any]] = []
    changed = True
    for old in conditions:
        if old.get("type") != new["type"]:
            result.append(dict(old))
            continue
        kept = old.get("status") == new["status"] and old.get("lastTransitionTime")
        result.append(
            {**new, "lastTransitionTime": old["lastTransitionTime"] if kept else timestamp()}
        )
        changed = any(old.get(key) != new.get(key) for key in _COMPARED)
    if not any(c["type"] == new["type"] for c in result):
        result.append({**new, "lastTransitionTime": timestamp()})
    return result, changed

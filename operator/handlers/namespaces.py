"""Namespace label index: pools' namespaceSelector matches against it."""

from __future__ import annotations

from typing import Any

import kopf

from lbipam.handlers.startup import State


@kopf.index("", "v1", "namespaces")
async def namespace_labels(body: kopf.Body, **_: Any) -> dict[str, dict[str, str]]:
    return {body["metadata"]["name"]: dict(body["metadata"].get("labels") or {})}


@kopf.on.event("", "v1", "namespaces")
async def namespace_event(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """New labels may make a pool match: pending Services of the namespace try again."""
    state: State = memo.state
    if state.reconciler.rebuilt:
        state.reconciler.retry_pending(body["metadata"]["name"])

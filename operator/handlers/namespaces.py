"""Namespace label index: pools' namespaceSelector matches against it."""

from __future__ import annotations

from typing import Any

import kopf

from lbipam.handlers.startup import rebuilt_state


@kopf.index("", "v1", "namespaces")
async def namespace_labels(body: kopf.Body, **_: Any) -> dict[str, dict[str, str]]:
    return {body["metadata"]["name"]: dict(body["metadata"].get("labels") or {})}


@kopf.on.event("", "v1", "namespaces")
async def namespace_event(body: kopf.Body, memo: kopf.Memo, **indexes: Any) -> None:
    """New labels may make a pool match: pending Services of the namespace try again."""
    # Namespaces always exist, so this is also what rebuilds an otherwise empty cluster.
    state = rebuilt_state(memo, indexes)
    state.reconciler.retry_pending(body["metadata"]["name"])

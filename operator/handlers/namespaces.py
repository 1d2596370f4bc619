"""Namespaces: their labels, which pools' namespaceSelectors match against."""

from __future__ import annotations

from typing import Any

import kopf

from lbipam.handlers.startup import controllers


@kopf.index("", "v1", "namespaces")
async def namespace_index(body: kopf.Body, **_: Any) -> dict[str, dict[str, str]]:
    return {body["metadata"]["name"]: dict(body["metadata"].get("labels") or {})}


@kopf.on.event("", "v1", "namespaces")
async def namespace_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    # Namespaces always exist, so this is also what rebuilds an otherwise empty cluster.
    owner = await controllers(memo)
    meta = body["metadata"]
    labels = None if event["type"] == "DELETED" else dict(meta.get("labels") or {})
    owner.dispatcher.namespace_changed(meta["name"], labels)

"""Nodes: their InternalIPs and ExternalIPs are never handed out by pools.

A Node writes its status every few seconds (heartbeats, conditions); the addresses almost
never change, so each event is compared with what is known and goes no further when equal.
Nodes are no Kopf index (whose start-up wait is quadratic in the objects, see
`runtime.startup`): they are listed before Kopf starts, and Kopf's own first listing comes
through here like any event.
"""

from __future__ import annotations

from typing import Any

import kopf

from lbipam.handlers.startup import controllers
from lbipam.ipam.registry import RangeKind
from lbipam.objects import node_addresses


@kopf.on.event("", "v1", "nodes")
async def node_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    owner = await controllers(memo)
    name = body["metadata"]["name"]
    addresses = None if event["type"] == "DELETED" else node_addresses(body)
    if owner.pools.known_reserved(RangeKind.NODE, name) == addresses:
        return  # a heartbeat: nothing that matters here changed
    owner.pools.reserved_changed(RangeKind.NODE, name, addresses)

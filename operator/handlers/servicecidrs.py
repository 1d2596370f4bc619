"""ServiceCIDRs: the ranges the API server hands out as ClusterIPs, never handed out by pools."""

from __future__ import annotations

from typing import Any

import kopf

from lbipam.handlers.startup import controllers
from lbipam.ipam.registry import RangeKind


def _cidrs(body: kopf.Body) -> tuple[str, ...]:
    return tuple((body.get("spec") or {}).get("cidrs") or ())


@kopf.index("networking.k8s.io", "v1", "servicecidrs")
async def service_cidr_index(body: kopf.Body, **_: Any) -> dict[str, tuple[str, ...]]:
    return {body["metadata"]["name"]: _cidrs(body)}


@kopf.on.event("networking.k8s.io", "v1", "servicecidrs")
async def service_cidr_event(
    event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    owner = await controllers(memo)
    cidrs = None if event["type"] == "DELETED" else _cidrs(body)
    owner.pools.reserved_changed(RangeKind.SERVICE_CIDR, body["metadata"]["name"], cidrs)

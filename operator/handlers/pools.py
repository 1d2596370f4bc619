"""IPPools: an index so no Service is judged before every pool is known, and their events."""

from __future__ import annotations

from typing import Any

import kopf

from lbipam.api import GROUP, POOLS, VERSION
from lbipam.handlers.startup import controllers
from lbipam.ipam.pool import PoolSpec
from lbipam.objects import PoolView, pool_spec, pool_view


@kopf.index(GROUP, VERSION, POOLS)
async def pool_index(body: kopf.Body, **_: Any) -> dict[str, tuple[PoolView, PoolSpec]]:
    return {body["metadata"]["name"]: (pool_view(body), pool_spec(body))}


@kopf.on.event(GROUP, VERSION, POOLS)
async def pool_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    owner = await controllers(memo)
    pool = None if event["type"] == "DELETED" else (pool_view(body), pool_spec(body))
    await owner.pools.observe(body["metadata"]["name"], pool)

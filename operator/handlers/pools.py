"""IPPool index and event handler: keep the registry current, then let pending Services retry."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from lbipam.controllers.pools import PoolView
from lbipam.handlers.startup import rebuilt_state
from lbipam.objects import GROUP, POOLS, VERSION, pool_spec

log = logging.getLogger(__name__)


@kopf.index(GROUP, VERSION, POOLS)
async def pool_specs(body: kopf.Body, **_: Any) -> dict[str, Any] | None:
    """Every pool, so no Service is judged before all pools are known."""
    try:
        spec = pool_spec(body)
    except ValueError as error:
        log.error("IPPool %s: %s", body["metadata"]["name"], error)
        return None
    return {spec.name: spec}


@kopf.on.event(GROUP, VERSION, POOLS)
async def pool_event(
    event: kopf.RawEvent,
    body: kopf.Body,
    memo: kopf.Memo,
    **indexes: Any,
) -> None:
    state = rebuilt_state(memo, indexes)
    name = body["metadata"]["name"]
    if event["type"] == "DELETED":
        state.pools.views.pop(name, None)
        change = state.registry.remove_pool(name)
    else:
        try:
            spec = pool_spec(body)
        except ValueError as error:
            log.error("IPPool %s: %s", name, error)
            return
        state.pools.views[name] = PoolView.of(body)
        change = state.registry.apply_pool(spec)
        state.pools.mark(name)
    state.pools.mark(*change.conflicts)
    state.reconciler.requeue(change.revoked)
    state.reconciler.retry_pending()

"""Service index and event handler: parse, hand to the reconcilers, return nothing."""

from __future__ import annotations

from typing import Any

import kopf

from lbipam.handlers.startup import State, rebuilt_state
from lbipam.parse import is_handled, our_condition, service_key, service_view


@kopf.index("", "v1", "services")
async def held_services(body: kopf.Body, memo: kopf.Memo, **_: Any) -> dict[Any, Any] | None:
    """Every Service we handle, so start-up knows all held addresses before deciding."""
    state: State = memo.state
    if not is_handled(body, state.settings):
        return None
    view = service_view(body, state.settings, None)
    return {view.key: view}


@kopf.on.event("", "v1", "services")
async def service_event(
    event: kopf.RawEvent,
    body: kopf.Body,
    memo: kopf.Memo,
    **indexes: Any,
) -> None:
    state = rebuilt_state(memo, indexes)
    key = service_key(body)
    handled = is_handled(body, state.settings)
    if not handled and key not in state.reconciler.views and our_condition(body) is None:
        if key in state.policies.managed:
            await state.policies.service_event(key)
        return  # a Service that is not, and never was, ours
    view = None if event["type"] == "DELETED" else service_view(body, state.settings, None)
    await state.reconciler.service_event(view, key)
    await state.policies.service_event(key)

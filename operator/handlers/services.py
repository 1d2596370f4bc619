"""Service event handler: parse, hand to the reconcilers, return nothing.

Services have no Kopf index: with one, Kopf's start-up wait for indexes wakes every waiting
object once per indexed object (quadratic; 5,000 Services took minutes). The held addresses
are read by one paged list instead, before Kopf starts (see `Operator.lead`).
"""

from __future__ import annotations

from typing import Any

import kopf

from lbipam.handlers.startup import rebuilt_state
from lbipam.objects import is_handled, our_condition, service_key, service_view


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

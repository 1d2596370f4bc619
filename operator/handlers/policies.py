"""Managed NetworkPolicies: an edit or deletion by someone else is undone."""

from __future__ import annotations

from typing import Any

import kopf

from lbipam.handlers.startup import rebuilt_state
from lbipam.policy.build import MANAGED_BY_LABEL


@kopf.on.event("networking.k8s.io", "v1", "networkpolicies", labels=dict([MANAGED_BY_LABEL]))
async def policy_event(
    event: kopf.RawEvent,
    body: kopf.Body,
    memo: kopf.Memo,
    **indexes: Any,
) -> None:
    state = rebuilt_state(memo, indexes)
    await state.policies.policy_event(body, deleted=event["type"] == "DELETED")

"""Managed NetworkPolicies: an edit or deletion by someone else is undone."""

from __future__ import annotations

from typing import Any

import kopf

from lbipam.api import MANAGED_BY_LABEL
from lbipam.handlers.startup import controllers


@kopf.on.event("networking.k8s.io", "v1", "networkpolicies", labels=dict([MANAGED_BY_LABEL]))
async def policy_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    owner = await controllers(memo)
    await owner.policies.policy_changed(body, deleted=event["type"] == "DELETED")

"""Policy controller: each Service's source-range NetworkPolicy equals what `policy.build` says."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import partial
from typing import Any

from lbipam.api import MANAGED_BY_LABEL
from lbipam.controllers.views import ServiceLookup
from lbipam.controllers.workqueue import WorkQueue
from lbipam.ipam.requests import ServiceKey
from lbipam.kube.gateway import Gateway
from lbipam.objects import ServiceView
from lbipam.policy.build import PolicyWarning, build_policy, policy_name
from lbipam.runtime.metrics import Metrics
from lbipam.settings import Settings

log = logging.getLogger(__name__)
_COMPARED = ("labels", "ownerReferences")


def is_managed(policy: Mapping[str, Any]) -> bool:
    labels = (policy.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(MANAGED_BY_LABEL[0]) == MANAGED_BY_LABEL[1])


def owner_key(policy: Mapping[str, Any]) -> ServiceKey | None:
    meta = policy.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == "Service" and ref.get("controller"):
            return ServiceKey(meta.get("namespace", ""), ref["name"])
    return None


def _differs(existing: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    if existing.get("spec") != wanted["spec"]:
        return True
    old, new = existing.get("metadata") or {}, wanted["metadata"]
    return any(old.get(field) != new.get(field) for field in _COMPARED)


class PolicyController:
    """Creates, updates, restores and deletes the NetworkPolicies lbipam manages."""

    def __init__(
        self, gateway: Gateway, metrics: Metrics, settings: Settings, views: ServiceLookup
    ) -> None:
        self.gateway = gateway
        self.metrics = metrics
        self.settings = settings
        self.views = views
        # Service -> name of the managed policy it has (or had, until we saw it go).
        self.managed: dict[ServiceKey, str] = {}
        self._warned: dict[ServiceKey, tuple[PolicyWarning, ...]] = {}
        self._queue = WorkQueue("NetworkPolicy for Service")

    async def service_changed(self, key: ServiceKey) -> None:
        """Make the policy of this Service (as the views now show it) what it should be."""
        view = self.views.get(key)
        if key not in self.managed and (view is None or not view.handled):
            return  # not ours, and no policy of ours: nothing to look at
        await self._queue.run(key, partial(self._sync, key))
        self.metrics.policies.set(len(self.managed))

    async def policy_changed(self, policy: Mapping[str, Any], deleted: bool) -> None:
        """Someone (maybe us) changed or deleted a managed policy: make it right again."""
        key = owner_key(policy)
        if key is None:
            return
        if deleted:
            self.managed.pop(key, None)
        else:
            # Seen at start-up too: a policy whose Service no longer wants one gets removed.
            self.managed.setdefault(key, policy["metadata"]["name"])
        await self.service_changed(key)

    def _plan(self, view: ServiceView | None) -> tuple[str | None, Any]:
        if view is None or not view.handled or not self.settings.enforce_source_ranges:
            return None, None
        plan = build_policy(view.body, allow_cluster=self.settings.source_ranges_allow_cluster)
        if plan.warnings != self._warned.get(view.key, ()):
            self._warned[view.key] = plan.warnings
            for warning in plan.warnings:
                self._event(view, warning.reason, warning.message)
        return plan.name, plan.manifest

    async def _sync(self, key: ServiceKey) -> None:
        view = self.views.get(key)
        name, wanted = self._plan(view)
        if view is None:
            self._warned.pop(key, None)
        if wanted is None and key not in self.managed:
            return  # nothing wanted, nothing of ours to remove: no API call
        name = name or self.managed.get(key) or policy_name(key.name)
        existing = await self.gateway.get_policy(key.namespace, name)
        if existing is not None and not is_managed(existing):
            if wanted is not None and view is not None:
                self._event(
                    view,
                    "PolicyNameTaken",
                    f"NetworkPolicy {name} exists and is not managed by lbipam; "
                    "it is left alone, so loadBalancerSourceRanges is not enforced. "
                    "Rename or delete that policy.",
                )
            self.managed.pop(key, None)
            return
        if wanted is None:
            if existing is not None:
                await self.gateway.delete_policy(key.namespace, name, existing["metadata"]["uid"])
                log.info("%s: deleted NetworkPolicy %s", key, name)
            self.managed.pop(key, None)
            return
        self.managed[key] = name
        if existing is None or _differs(existing, wanted):
            if existing is not None:
                wanted = {
                    **wanted,
                    "metadata": {
                        **wanted["metadata"],
                        "resourceVersion": existing["metadata"]["resourceVersion"],
                    },
                }
            await self.gateway.put_policy(wanted, existing is not None)
            log.info("%s: %s NetworkPolicy %s", key, "updated" if existing else "created", name)

    def _event(self, view: ServiceView, reason: str, message: str) -> None:
        self.gateway.event(view.reference, "Service", reason, message, warning=True)

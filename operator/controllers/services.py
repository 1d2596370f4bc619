"""Service reconciler: latest view of each Service → decision from `ipam` → one status write."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from functools import partial
from typing import Any

from lbipam.controllers.pools import PoolStatusWriter
from lbipam.controllers.workqueue import KeyedRunner
from lbipam.ipam.registry import Registry
from lbipam.ipam.requests import Outcome, ServiceKey
from lbipam.kube.writer import Kube, is_status, now
from lbipam.objects import CONDITION_TYPE, ServiceView, service_key
from lbipam.runtime.metrics import Metrics

log = logging.getLogger(__name__)
SWEEP_FIRST = 30.0  # seconds: Kopf's first listing is processed by then
SWEEP_EVERY = 600.0


class Reconciler:
    """Owns the registry; every decision for a Service goes through `reconcile`."""

    def __init__(
        self, registry: Registry, kube: Kube, metrics: Metrics, pools: PoolStatusWriter
    ) -> None:
        self.registry = registry
        self.kube = kube
        self.metrics = metrics
        self.pools = pools
        self.views: dict[ServiceKey, ServiceView] = {}
        self.pending: set[ServiceKey] = set()
        self._first_seen: dict[ServiceKey, float] = {}
        self.runner = KeyedRunner("Service")
        self.rebuilt = False
        self.snapshot: list[ServiceView] = []
        self._retry_scheduled = False
        # Kopf's live namespace-labels index, handed over by the handlers on their first call.
        self.namespace_labels: Mapping[str, Any] | None = None

    def rebuild(self, pool_specs: Iterable[Any]) -> None:
        """Start-up: every pool and every held address is known before any decision.

        The held addresses come from `snapshot`, the Services listed before Kopf started.
        """
        for spec in pool_specs:
            self.registry.apply_pool(spec)
        handled = [view for view in self.snapshot if view.handled]
        self.snapshot = []
        for view in handled:
            self.views.setdefault(view.key, view)
        losers = self.registry.rebuild(view.request for view in handled)
        self.rebuilt = True
        self.pools.mark_all()
        log.info(
            "rebuilt state: %d pools, %d handled Services, %d duplicate holders to move",
            len(self.registry.pool_names()),
            len(handled),
            len(losers),
        )

    async def service_event(self, view: ServiceView | None, key: ServiceKey) -> None:
        """A Service was added, changed (view) or deleted (None)."""
        if view is None:
            self.views.pop(key, None)
        else:
            self.views[key] = view
        await self.reconcile(key)

    async def sweep_forever(self) -> None:
        """Soon after start-up, then now and then: let go of Services deleted unseen.

        A Service deleted between the start-up list and Kopf's first listing sends no
        DELETED event; without this its address would stay taken until the next restart.
        """
        delay = SWEEP_FIRST
        while True:
            await asyncio.sleep(delay)
            delay = SWEEP_EVERY
            if self.rebuilt:
                before = dict(self.views)
                existing = {service_key(body) for body in await self.kube.list_services()}
                await self.sweep(before, existing)

    async def sweep(
        self, before: Mapping[ServiceKey, ServiceView], existing: set[ServiceKey]
    ) -> None:
        """Release what `before` knew of and the cluster no longer has, unless news came since."""
        gone = [k for k, view in before.items() if k not in existing and self.views.get(k) is view]
        for key in sorted(gone):
            await self.service_event(None, key)
        if gone:
            log.info("swept %d Services deleted while unwatched", len(gone))

    def requeue(self, keys: Iterable[ServiceKey]) -> None:
        """Reconcile these Services soon, outside the caller's handler."""
        for key in keys:
            self.runner.submit(key, partial(self._reconcile, key))

    def cancel(self) -> None:
        """End of a term: queued reconciles must not act on this term's decisions."""
        self.runner.cancel()

    def retry_pending(self, namespace: str | None = None) -> None:
        """Capacity may have appeared: give pending Services another try, oldest first.

        Calls for all namespaces coalesce into one pass per loop turn, so a burst of
        deletions does not retry every pending Service once per deletion.
        """
        if namespace is not None:
            self._retry([k for k in self.pending if k.namespace == namespace])
        elif not self._retry_scheduled:
            self._retry_scheduled = True
            asyncio.get_running_loop().call_soon(self._retry_all)

    def _retry_all(self) -> None:
        self._retry_scheduled = False
        self._retry(list(self.pending))

    def _retry(self, keys: list[ServiceKey]) -> None:
        keys.sort(key=lambda k: (self.views[k].request.created, k) if k in self.views else ("", k))
        self.requeue(keys)

    async def reconcile(self, key: ServiceKey) -> None:
        await self.runner.run(key, partial(self._reconcile, key))

    async def _reconcile(self, key: ServiceKey) -> None:
        view = self.views.get(key)
        if view is None or not view.handled:
            await self._let_go(key, view)
        else:
            await self._allocate(view)

    async def _let_go(self, key: ServiceKey, view: ServiceView | None) -> None:
        """The Service is gone or no longer ours: free its addresses, remove what we wrote."""
        held = self.registry.held_by(key)
        pools = [self.registry.pool_of(address) for address in held]
        freed = self.registry.release(key)
        self.pending.discard(key)
        self._first_seen.pop(key, None)
        self.metrics.pending.set(len(self.pending))
        self.metrics.released(pools)
        shows_ours = view is not None and (view.condition is not None or view.request.held)
        if view is not None and shows_ours and await self._write(view, (), None) and held:
            self._event(view, "AddressReleased", f"released {', '.join(held)}")
        if freed:
            log.info("%s: released %s", key, ", ".join(freed))
            self.pools.mark_all()
            self.retry_pending()

    def _labels_of(self, namespace: str) -> Mapping[str, str]:
        index = self.namespace_labels
        if index is None or namespace not in index:
            return {}
        for labels in index[namespace]:
            return dict(labels)
        return {}

    async def _allocate(self, view: ServiceView) -> None:
        key = view.key
        if not view.request.held:
            self._first_seen.setdefault(key, time.monotonic())
        # The registry completes `held` with what it recorded, so a stale event moves nothing.
        request = replace(view.request, namespace_labels=self._labels_of(key.namespace))
        outcome = self.registry.ensure(request)
        if outcome.allocated or outcome.released:
            self.pools.mark_all()
        if outcome.displaced:
            self.requeue(outcome.displaced)
        if outcome.ok:
            self.pending.discard(key)
        else:
            self.pending.add(key)
        self.metrics.pending.set(len(self.pending))

        condition = self._condition(view, outcome)
        if outcome.addresses == view.request.held and condition is None:
            return  # already as it should be: level-triggered, nothing to write
        if await self._write(view, outcome.addresses, condition or view.condition):
            self._report(view, outcome)

    async def _write(
        self, view: ServiceView, ingress: tuple[str, ...], condition: Mapping[str, Any] | None
    ) -> bool:
        """Write our status fields; False when the Service changed or went meanwhile.

        Either way a newer event follows (MODIFIED or DELETED) and brings the Service back
        here; the registry keeps the decision, so the next write carries the same addresses.
        """
        try:
            await self.kube.apply_service_status(
                view.key, view.resource_version, ingress, condition
            )
        except Exception as error:
            if is_status(error, 409) or await self.kube.service_gone(view.key, error):
                return False
            raise
        return True

    def _condition(self, view: ServiceView, outcome: Outcome) -> dict[str, Any] | None:
        """Our status condition, or None when the one the Service shows is still right."""
        status = "True" if outcome.ok else "False"
        current = view.condition or {}
        if (
            current.get("status") == status
            and current.get("reason") == outcome.reason.value
            and current.get("message") == outcome.message
        ):
            return None
        generation = view.body.get("metadata", {}).get("generation")
        condition: dict[str, Any] = {
            "type": CONDITION_TYPE,
            "status": status,
            "reason": outcome.reason.value,
            "message": outcome.message,
            "lastTransitionTime": (
                current["lastTransitionTime"]
                if current.get("status") == status and current.get("lastTransitionTime")
                else now()
            ),
        }
        if generation is not None:
            condition["observedGeneration"] = generation
        return condition

    def _report(self, view: ServiceView, outcome: Outcome) -> None:
        """Events, metrics and logs for a status just written."""
        key = view.key
        self.metrics.record(outcome, view.request.pools)
        if outcome.ok:
            if outcome.allocated:
                pool = ",".join(sorted(set(outcome.pools)))
                started = self._first_seen.pop(key, None)
                if started is not None:
                    self.metrics.latency.observe(time.monotonic() - started)
                log.info("%s: allocated %s from %s", key, ", ".join(outcome.allocated), pool)
                self._event(view, "AddressAllocated", outcome.message)
            self.metrics.released(self.registry.pool_of(a) for a in outcome.released)
            for address in outcome.released:
                self._released(view, address, outcome.message)
        else:
            log.warning("%s: %s: %s", key, outcome.reason.value, outcome.message)
            self._event(view, "AllocationFailed", outcome.message, warning=True)

    def _released(self, view: ServiceView, address: str, message: str) -> None:
        """Say why an address went: revoked (a Warning) unless the Service asked for the change."""
        owners = [str(k) for k in self.registry.owners_of(address) if k != view.key]
        if self.registry.pool_of(address) is None:
            why = f"{address} is no longer in any pool"
        elif owners:
            why = f"{address} is held by the older Service {', '.join(owners)}"
        else:
            self._event(view, "AddressReleased", f"released {address}; {message}")
            return
        self._event(view, "AddressRevoked", f"{why}; {message}", warning=True)

    def _event(
        self, view: ServiceView, reason: str, message: str, *, warning: bool = False
    ) -> None:
        self.kube.event(view.reference, "Service", reason, message, warning=warning)

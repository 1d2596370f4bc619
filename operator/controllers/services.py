"""Service controller: is this Service ours → decision from `ipam` → one status write → report."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from functools import partial
from typing import Any

from lbipam.api import SERVICE_CONDITION
from lbipam.controllers.claims import AddressClaims
from lbipam.controllers.conditions import condition, set_condition
from lbipam.controllers.views import ServiceViews
from lbipam.controllers.workqueue import WorkQueue
from lbipam.ha.term import Fenced
from lbipam.ipam.registry import Registry
from lbipam.ipam.requests import Outcome, ServiceKey
from lbipam.kube.errors import is_status
from lbipam.kube.writer import Writer
from lbipam.objects import ServiceView, service_key
from lbipam.runtime.metrics import Metrics

log = logging.getLogger(__name__)
SWEEP_FIRST = 30.0  # seconds: Kopf's first listing is processed by then
SWEEP_EVERY = 600.0
# Each round blocks the addresses found held elsewhere; a pool full of foreign claims ends
# the rounds with PoolExhausted, so this bounds only a storm of concurrent claimers.
MAX_CLAIM_ROUNDS = 16

Follower = Callable[[ServiceKey], Awaitable[None]]


class ServiceController:
    """Owns the Service side of the registry and the Service views; one Service at a time."""

    def __init__(
        self,
        registry: Registry,
        writer: Writer,
        metrics: Metrics,
        views: ServiceViews,
        claims: AddressClaims,
        follower: Follower,
    ) -> None:
        self.registry = registry
        self.writer = writer
        self.metrics = metrics
        self.views = views
        self.claims = claims
        # Told of every change of a Service once its status is settled (the policy controller).
        self.follower = follower
        self.pending: set[ServiceKey] = set()
        # PreferDualStack Services served in one family only: retried with the pending ones,
        # not counted as pending (they have an address).
        self._partial: set[ServiceKey] = set()
        self.rebuilt = asyncio.Event()
        self._namespace_labels: dict[str, Mapping[str, str]] = {}
        self._first_seen: dict[ServiceKey, float] = {}
        self._queue = WorkQueue("Service")
        self._retry_scheduled = False
        self._retry_partial = False

    def rebuild(
        self, services: Iterable[ServiceView], namespace_labels: Mapping[str, Mapping[str, str]]
    ) -> None:
        """Start-up, after the pools: every held address is known before any decision."""
        self._namespace_labels = dict(namespace_labels)
        handled = [view for view in services if view.handled]
        for view in handled:
            self.views.put(view)
        losers = self.registry.rebuild(self._with_labels(view).request for view in handled)
        self.rebuilt.set()
        log.info(
            "rebuilt state: %d pools, %d handled Services, %d duplicate holders to move",
            len(self.registry.pool_names()),
            len(handled),
            len(losers),
        )

    async def observe(self, key: ServiceKey, view: ServiceView | None) -> None:
        """A Service was added or changed (view) or deleted (None)."""
        known = key in self.views
        if not known and (view is None or (not view.handled and view.condition is None)):
            await self.follower(key)  # never ours; a policy of ours may still name it
            return
        if view is None:
            self.views.remove(key)
        else:
            self.views.put(view)
        await self._queue.run(key, partial(self._reconcile, key))
        await self.follower(key)

    def namespace_changed(self, name: str, labels: Mapping[str, str] | None) -> None:
        """New labels may make a pool match: pending Services of the namespace try again."""
        if labels is None:
            self._namespace_labels.pop(name, None)
            return
        if self._namespace_labels.get(name) != labels:
            self._namespace_labels[name] = dict(labels)
            self._retry([k for k in self.pending | self._partial if k.namespace == name])

    async def sweep_forever(self) -> None:
        """Soon after start-up, then now and then: let go of Services deleted unseen.

        A Service deleted between the start-up list and Kopf's first listing sends no
        DELETED event; without this its address would stay taken until the next restart.
        """
        await self.rebuilt.wait()
        # Claims of Services deleted while nobody watched go at once: the record is rebuilt.
        delay, first = SWEEP_FIRST, True
        while True:
            try:
                if not first:
                    before = self.views.snapshot()
                    listed = await self.writer.list_services(service_key)
                    await self.sweep(before, set(listed))
                again, freed = await self.claims.collect(relist=not first)
                self.requeue(again)
                if freed:
                    self.retry_pending()
            except Fenced:
                return
            except Exception:
                log.exception("sweep failed; the next one tries again in %.0fs", delay)
            await asyncio.sleep(delay)
            delay, first = SWEEP_EVERY, False

    async def sweep(
        self, before: Mapping[ServiceKey, ServiceView], existing: set[ServiceKey]
    ) -> None:
        """Release what `before` knew of and the cluster no longer has, unless news came since."""
        gone = [k for k, view in before.items() if k not in existing and self.views.get(k) is view]
        for key in sorted(gone):
            await self.observe(key, None)
        if gone:
            log.info("swept %d Services deleted while unwatched", len(gone))

    def requeue(self, keys: Iterable[ServiceKey]) -> None:
        """Reconcile these Services soon, outside the caller."""
        for key in keys:
            self._queue.submit(key, partial(self._reconcile, key))

    def retry_pending(self, pools_changed: bool = False) -> None:
        """Capacity may have appeared: give pending Services another try, oldest first; when
        pools changed, also PreferDualStack ones lacking a family (a freed address is not
        worth retrying them all: most lack it because no pool has that family at all).

        Calls coalesce into one pass per loop turn, so a burst of deletions does not retry
        every pending Service once per deletion.
        """
        self._retry_partial |= pools_changed
        if not self._retry_scheduled:
            self._retry_scheduled = True
            asyncio.get_running_loop().call_soon(self._retry_all)

    def cancel(self) -> None:
        """End of a term: queued reconciles must not act on this term's decisions."""
        self._queue.cancel()

    def _retry_all(self) -> None:
        keys = self.pending | self._partial if self._retry_partial else self.pending
        self._retry_scheduled = self._retry_partial = False
        self._retry(list(keys))

    def _retry(self, keys: list[ServiceKey]) -> None:
        def age(key: ServiceKey) -> tuple[str, ServiceKey]:
            view = self.views.get(key)
            return (view.request.created if view else "", key)

        self.requeue(sorted(keys, key=age))

    def _with_labels(self, view: ServiceView) -> ServiceView:
        labels = self._namespace_labels.get(view.key.namespace, {})
        return replace(view, request=replace(view.request, namespace_labels=labels))

    def _pending(self, key: ServiceKey, pending: bool, partial: bool = False) -> None:
        for keys, member in ((self.pending, pending), (self._partial, partial)):
            if member:
                keys.add(key)
            else:
                keys.discard(key)
        self.metrics.pending.set(len(self.pending))

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
        self._pending(key, False)
        self._first_seen.pop(key, None)
        self.metrics.released(pools)
        shows_ours = view is not None and (view.condition is not None or view.request.held)
        if view is not None and shows_ours:
            if not await self._write(view, (), None):
                return  # the status may still show them: the next event lets go
            if held:
                self._event(view, "AddressReleased", f"released {', '.join(held)}")
        given = await self.claims.let_go(key)
        self.requeue(given.unclaimed)
        if freed:
            log.info("%s: released %s", key, ", ".join(freed))
        if freed or given.freed:
            self.retry_pending()

    async def _allocate(self, view: ServiceView) -> None:
        key = view.key
        if not view.request.held:
            self._first_seen.setdefault(key, time.monotonic())
        outcome = await self._decide(view)
        self.requeue(outcome.displaced)
        self._pending(key, not outcome.ok, outcome.partial)
        if outcome.waiting and not outcome.addresses and not outcome.released:
            return  # the pool's protection event retries it; a failure now would only flash
        wanted = condition(
            SERVICE_CONDITION,
            outcome.ok,
            outcome.reason.value,
            outcome.message,
            view.body["metadata"].get("generation"),
        )
        (written, *_), changed = set_condition([view.condition] if view.condition else [], wanted)
        if outcome.addresses == view.request.held and not changed:
            self.requeue(outcome.followers)  # it joined a group as its oldest member
            return  # already as it should be: level-triggered, nothing to write
        if await self._write(view, outcome.addresses, written if changed else view.condition):
            self._report(view, outcome)
            given = await self.claims.give_back(key, self.claims.others(key, outcome.addresses))
            if given.freed:
                self.retry_pending()
            # Only now: the claim on an address a follower keeps has passed to it.
            self.requeue([*outcome.followers, *given.unclaimed])

    async def _decide(self, view: ServiceView) -> Outcome:
        """The registry's decision, its addresses claimed; one held elsewhere is decided again.

        The registry completes `held` with what it recorded, so a stale event moves nothing.
        """
        request = self._with_labels(view).request
        for _ in range(MAX_CLAIM_ROUNDS):
            outcome = self.registry.ensure(request)
            refused = await self.claims.take(view.key, outcome.addresses, view.request.held)
            if not refused:
                return outcome
            for address, holder in refused.items():
                log.info("%s: %s is held by %s; choosing again", view.key, address, holder)
                displaced = self.registry.block(address, holder)
                self.requeue(k for k in displaced if k != view.key)
        raise RuntimeError(f"every address chosen for {view.key} was claimed by someone else")

    async def _write(
        self, view: ServiceView, ingress: tuple[str, ...], condition: Mapping[str, Any] | None
    ) -> bool:
        """Write our status fields; False when the Service changed or went meanwhile.

        Either way a newer event follows (MODIFIED or DELETED) and brings the Service back
        here; the registry keeps the decision, so the next write carries the same addresses
        unless their claims were lost meanwhile.
        """
        try:
            await self.writer.apply_service_status(
                view.key, view.resource_version, ingress, condition
            )
        except Exception as error:
            if is_status(error, 409) or await self.writer.service_gone(view.key, error):
                return False
            raise
        return True

    def _report(self, view: ServiceView, outcome: Outcome) -> None:
        """Events, metrics and logs for a status just written."""
        key = view.key
        self.metrics.record(outcome, view.request.pools)
        # An address taken away is said even when no other could be found in its place.
        self.metrics.released(self.registry.pool_of(a) for a in outcome.released)
        for address in outcome.released:
            if why := outcome.revoked.get(address):
                self._event(view, "AddressRevoked", f"{why}; {outcome.message}", warning=True)
            else:
                self._event(view, "AddressReleased", f"released {address}; {outcome.message}")
        if not outcome.ok:
            log.warning("%s: %s: %s", key, outcome.reason.value, outcome.message)
            self._event(view, "AllocationFailed", outcome.message, warning=True)
            return
        if outcome.allocated:
            pool = ",".join(sorted(set(outcome.pools)))
            started = self._first_seen.pop(key, None)
            if started is not None:
                self.metrics.latency.observe(time.monotonic() - started)
            log.info("%s: allocated %s from %s", key, ", ".join(outcome.allocated), pool)
            self._event(view, "AddressAllocated", outcome.message)

    def _event(
        self, view: ServiceView, reason: str, message: str, *, warning: bool = False
    ) -> None:
        self.writer.event(view.reference, "Service", reason, message, warning=warning)

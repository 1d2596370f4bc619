"""Service controller: is this Service ours → decision from `ipam` → one status write → report."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from lbipam.api import SERVICE_CONDITION
from lbipam.controllers.claims import AddressClaims, ClaimReport
from lbipam.controllers.conditions import condition, set_condition
from lbipam.controllers.results import Next
from lbipam.controllers.views import ServiceViews
from lbipam.ipam.durations import stamp
from lbipam.ipam.registry import Registry
from lbipam.ipam.requests import Outcome, ServiceKey
from lbipam.kube.errors import is_status
from lbipam.kube.gateway import Gateway
from lbipam.objects import ServiceView
from lbipam.runtime.metrics import Metrics

log = logging.getLogger(__name__)
# Each round blocks the addresses found held elsewhere; a pool full of foreign claims ends
# the rounds with PoolExhausted, so this bounds only a storm of concurrent claimers.
MAX_CLAIM_ROUNDS = 16


class ServiceController:
    """Owns the Service side of the registry and the Service views; one Service at a time.

    It blocks an address when a claim is refused and unblocks it when a claim that kept it
    goes; what it leaves for other Services to do goes back in a `Next`, never to a queue.
    """

    def __init__(
        self,
        registry: Registry,
        gateway: Gateway,
        metrics: Metrics,
        views: ServiceViews,
        claims: AddressClaims,
    ) -> None:
        self.registry = registry
        self.gateway = gateway
        self.metrics = metrics
        self.views = views
        self.claims = claims
        self.pending: set[ServiceKey] = set()
        # PreferDualStack Services served in one family only: retried with the pending ones,
        # not counted as pending (they have an address).
        self.partial: set[ServiceKey] = set()
        self.rebuilt = asyncio.Event()
        self._namespace_labels: dict[str, Mapping[str, str]] = {}
        self._first_seen: dict[ServiceKey, float] = {}
        # The resourceVersion each of our status writes made, until the Service's next event.
        self._written: dict[ServiceKey, str] = {}

    def rebuild(
        self, services: Iterable[ServiceView], namespace_labels: Mapping[str, Mapping[str, str]]
    ) -> None:
        """Start-up, after the pools: every held address is known before any decision, and
        then the holds after release the claims record."""
        self._namespace_labels = dict(namespace_labels)
        handled = [view for view in services if view.handled]
        for view in handled:
            self.views.put(view)
        losers = self.registry.rebuild(self._with_labels(view).request for view in handled)
        self.registry.restore_holds(self.claims.held())
        self.rebuilt.set()
        log.info(
            "rebuilt state: %d pools, %d handled Services, %d duplicate holders to move",
            len(self.registry.pool_names()),
            len(handled),
            len(losers),
        )

    def observe(self, key: ServiceKey, view: ServiceView | None) -> bool:
        """A Service was added or changed (view) or deleted (None): whether to reconcile it
        (it is ours, or was)."""
        known = key in self.views
        if not known and (view is None or (not view.handled and view.condition is None)):
            return False  # never ours
        if view is None:
            self.views.remove(key)
        else:
            self.views.put(view)
        return True

    def is_echo(self, key: ServiceKey, version: str | None) -> bool:
        """Whether an event is the echo of our own status write, which the view shows already:
        the Service's first event since the write, at the version the write made."""
        written = self._written.pop(key, None)
        return written is not None and written == version

    def namespace_changed(self, name: str, labels: Mapping[str, str] | None) -> Next:
        """New labels may make a pool match: pending Services of the namespace try again."""
        then = Next()
        if labels is None:
            self._namespace_labels.pop(name, None)
        elif self._namespace_labels.get(name) != labels:
            self._namespace_labels[name] = dict(labels)
            then.retry = [k for k in self.pending | self.partial if k.namespace == name]
        return then

    def age(self, key: ServiceKey) -> tuple[str, ServiceKey]:
        """Sorts older Services first: creationTimestamp, then namespace/name."""
        view = self.views.get(key)
        return (view.request.created if view else "", key)

    def end_holds(self, now: float) -> Next:
        """Holds after release whose time is up end: their Services drop the claims, and
        pending Services may get the addresses."""
        then = Next()
        ended = self.registry.end_holds(now)
        if ended:
            log.info("holds after release ended for %s", ", ".join(map(str, ended)))
            then.requeue(ended)
            then.retry_pending()
        return then

    async def collect_claims(self, relist: bool = False, due: bool = False) -> Next:
        """Release claims nobody holds (see `AddressClaims.collect`)."""
        then = Next()
        self._settle(await self.claims.collect(self.registry.owners_of, relist, due), then)
        return then

    async def reconcile(self, key: ServiceKey, then: Next) -> None:
        """Make the Service's status what the registry decides; `then` gets what is left."""
        view = self.views.get(key)
        if view is None or not view.handled:
            await self._let_go(key, view, then)
        else:
            await self._allocate(view, then)

    def _with_labels(self, view: ServiceView) -> ServiceView:
        labels = self._namespace_labels.get(view.key.namespace, {})
        return replace(view, request=replace(view.request, namespace_labels=labels))

    def _pending(self, key: ServiceKey, pending: bool, partial: bool = False) -> None:
        for keys, member in ((self.pending, pending), (self.partial, partial)):
            if member:
                keys.add(key)
            else:
                keys.discard(key)
        self.metrics.pending.set(len(self.pending))

    async def _let_go(self, key: ServiceKey, view: ServiceView | None, then: Next) -> None:
        """The Service is gone or no longer ours: free its addresses, remove what we wrote."""
        held = self.registry.held_by(key)
        pools = [self.registry.pool_of(address) for address in held]
        freed = self.registry.release(key, time.time())
        self._pending(key, False)
        self._first_seen.pop(key, None)
        self.metrics.released(pools)
        shows_ours = view is not None and (view.condition is not None or view.request.held)
        if view is not None and shows_ours:
            if not await self._write(view, (), None):
                return  # the status may still show them: the next event lets go
            if held:
                self._event(view, "AddressReleased", f"released {', '.join(held)}")
        self._settle(await self.claims.release_all(key, self.registry.owners_of), then)
        if freed:
            log.info("%s: released %s", key, ", ".join(freed))
        if held:
            # Freed, or left to sharers: either way a pending Service may now get or join it.
            then.retry_pending()

    async def _allocate(self, view: ServiceView, then: Next) -> None:
        key = view.key
        if not view.request.held:
            self._first_seen.setdefault(key, time.monotonic())
        outcome = await self._decide(view, then)
        then.requeue(outcome.displaced)
        self._pending(key, not outcome.ok, outcome.partial)
        if outcome.addresses and view.request.sharing_key:
            then.retry.extend(self._kept_off(key, view.request.sharing_key))
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
            # Already as it should be: level-triggered, nothing to write. Yet a claim made
            # for a write that lost to another replica's, which showed this, is left over.
            then.requeue(outcome.followers)  # it joined a group as its oldest member
            self._settle(await self._release_left_behind(key, outcome.addresses), then)
            return
        if await self._write(view, outcome.addresses, written if changed else view.condition):
            self._report(view, outcome)
            # Only now: the claim on an address a group member keeps has passed to it.
            report = await self._release_left_behind(key, outcome.addresses)
            then.requeue(outcome.followers)
            self._settle(report, then)

    async def _release_left_behind(self, key: ServiceKey, shown: tuple[str, ...]) -> ClaimReport:
        """Release the Service's claims on addresses other than those its status shows."""
        left = self.claims.left_behind(key, shown)
        return await self.claims.release(key, left, self.registry.owners_of)

    def _kept_off(self, holder: ServiceKey, sharing_key: str) -> list[ServiceKey]:
        """Pending Services of the holder's sharing key: its ports or consent, which may have
        just changed, can be what kept them off its address (nothing was freed to retry them)."""
        return [
            key
            for key in self.pending
            if key != holder
            and (view := self.views.get(key)) is not None
            and view.request.sharing_key == sharing_key
        ]

    async def _decide(self, view: ServiceView, then: Next) -> Outcome:
        """The registry's decision, its addresses claimed; one held elsewhere is decided again.

        The registry completes `held` with what it recorded, so a stale event moves nothing.
        """
        request = self._with_labels(view).request
        owners = self.registry.owners_of
        # Shown addresses claimed for this Service (by another replica leading at once, say)
        # are its own: blocked here because the claim was refused to another Service, or
        # decided otherwise here meanwhile, they were taken back and the two replicas wrote
        # their own decisions over each other's, deleting each other's claims as they went.
        claimed = await self.claims.claimed_for(view.key, view.request.held)
        for address in claimed:
            self.registry.unblock(address)
        self.registry.adopt(view.key, claimed)
        for _ in range(MAX_CLAIM_ROUNDS):
            outcome = self.registry.ensure(request)
            report = await self.claims.take(view.key, outcome.addresses, view.request.held, owners)
            self._settle(report, then)
            if not report.refused:
                return outcome
            for address, holder in report.refused.items():
                log.info("%s: %s is held by %s; choosing again", view.key, address, holder)
                displaced = self.registry.block(address, holder)
                then.requeue(k for k in displaced if k != view.key)
        raise RuntimeError(f"every address chosen for {view.key} was claimed by someone else")

    def _settle(self, report: ClaimReport, then: Next) -> None:
        """The registry learns what the claims did: an address a claim still keeps is
        blocked, one a dropped claim kept from others is handed out again, and holders the
        claim did not pass to claim it."""
        for address, holder in report.kept.items():
            then.requeue(self.registry.block(address, holder))
        unblocked = [address for address in report.dropped if self.registry.unblock(address)]
        if unblocked:
            then.retry_pending()
        then.requeue(report.unclaimed)

    async def _write(
        self, view: ServiceView, ingress: tuple[str, ...], condition: Mapping[str, Any] | None
    ) -> bool:
        """Write our status fields; False when the Service changed or went meanwhile.

        Either way a newer event follows (MODIFIED or DELETED) and brings the Service back
        here; the registry keeps the decision, so the next write carries the same addresses
        unless their claims were lost meanwhile.
        """
        try:
            written = await self.gateway.apply_service_status(
                view.key, view.resource_version, ingress, condition
            )
        except Exception as error:
            if is_status(error, 409) or await self.gateway.service_gone(view.key, error):
                return False
            raise
        # Conditional, the write moved nothing but our status. An event seen meanwhile (outside
        # this Service's lock, see Dispatcher) put a newer view: it stays, and its echo counts.
        if view.resource_version is not None and self.views.get(view.key) is view:
            self.views.put(view.with_status_of(written))
            self._written[view.key] = written["metadata"]["resourceVersion"]
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
            if outcome.kept:
                kept = ", ".join(
                    f"{a}, held for it since {stamp(t)}" for a, t in outcome.kept.items()
                )
                self._event(view, "AddressKept", f"kept {kept}; {outcome.message}")
            else:
                self._event(view, "AddressAllocated", outcome.message)

    def _event(
        self, view: ServiceView, reason: str, message: str, *, warning: bool = False
    ) -> None:
        self.gateway.event(view.reference, "Service", reason, message, warning=warning)

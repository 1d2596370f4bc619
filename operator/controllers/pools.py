"""Pool controller: IPPools into the registry, their status, and the protection finalizer.

A pool hands out nothing before it carries `lbipam.io/protection` (the registry sees it as
not protected), so a pool that holds addresses can never be deleted under its holders.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

from lbipam.api import (
    FINALIZER,
    POOL_EXHAUSTED,
    POOL_NODE_ADDRESS,
    POOL_OVER_LIMIT,
    POOL_READY,
    POOL_SERVICE_CIDR,
)
from lbipam.controllers.conditions import condition, set_condition
from lbipam.controllers.results import Next, Scheduler
from lbipam.controllers.views import ServiceLookup
from lbipam.controllers.workqueue import WorkQueue
from lbipam.ha.term import Fenced
from lbipam.ipam.holdings import held_after_release
from lbipam.ipam.pool import PoolSpec
from lbipam.ipam.registry import (
    PoolChange,
    PoolState,
    PoolSummary,
    RangeKind,
    Registry,
    ReservedHolder,
)
from lbipam.kube.errors import is_status
from lbipam.kube.gateway import Gateway
from lbipam.objects import PoolView

# Allocations change counts; one write per pool per interval keeps status writes off the
# allocation path while `kubectl get ippools` stays live.
FLUSH_INTERVAL = 0.5
log = logging.getLogger(__name__)
# Per kind of the cluster's own ranges: the pool condition, its message naming them, and
# its message when there are none.
OVERLAPS = {
    RangeKind.SERVICE_CIDR: (
        POOL_SERVICE_CIDR,
        "overlaps ServiceCIDR {}: addresses inside it are never handed out, because the API "
        "server hands them out as ClusterIPs",
        "no ServiceCIDR overlaps",
    ),
    RangeKind.NODE: (
        POOL_NODE_ADDRESS,
        "contains an address of Node {}: it is never handed out, because a node answers on "
        "its own InternalIPs and ExternalIPs",
        "no Node address inside",
    ),
}
# Names shown in one condition message; a pool over a whole node subnet names a few.
SHOWN_NAMES = 10


def overlap_condition(pool: PoolSummary, kind: RangeKind) -> dict[str, Any]:
    """The pool's condition for one kind of the cluster's own ranges, naming them."""
    kind_condition, overlaps, none = OVERLAPS[kind]
    names = pool.overlapping(kind)
    if not names:
        return condition(kind_condition, False, "NoOverlap", none)
    shown = ", ".join(names[:SHOWN_NAMES])
    if len(names) > SHOWN_NAMES:
        shown += f" and {len(names) - SHOWN_NAMES} more"
    return condition(kind_condition, True, kind.value, overlaps.format(shown))


def desired_status(pool: PoolSummary, view: PoolView) -> dict[str, Any]:
    """The status block for one pool, from the registry's numbers and state."""
    if pool.state is PoolState.READY:
        ready = condition(POOL_READY, True, "Ready", "the pool hands out addresses")
    else:
        message = f"the pool {pool.why}; it hands out no new address until that changes"
        ready = condition(POOL_READY, False, pool.state.value, message)
    if pool.exhausted:
        exhausted = condition(POOL_EXHAUSTED, True, "Exhausted", "no address left" + _held(pool))
    else:
        available = f"{pool.available} addresses available"
        exhausted = condition(POOL_EXHAUSTED, False, "Available", available)
    overlaps = [overlap_condition(pool, kind) for kind in RangeKind]
    conditions = list(view.status.get("conditions") or [])
    for wanted in (ready, exhausted, *overlaps, limit_condition(pool)):
        conditions, _ = set_condition(conditions, wanted)
    return {
        "observedGeneration": view.generation,
        "total": str(pool.total),
        "allocated": str(pool.allocated),
        "available": str(pool.available),
        "reserved": str(pool.reserved),
        "held": str(pool.held),
        "conditions": conditions,
    }


def limit_condition(pool: PoolSummary) -> dict[str, Any]:
    """Whether a namespace holds more than perNamespaceLimit allows (the limit was lowered)."""
    if not pool.over_limit:
        return condition(
            POOL_OVER_LIMIT, False, "WithinLimit", "no namespace holds more than its limit"
        )
    over = ", ".join(f"{namespace} holds {count}" for namespace, count in pool.over_limit)
    return condition(
        POOL_OVER_LIMIT,
        True,
        "OverLimit",
        f"above perNamespaceLimit: {over}; they keep their addresses, new ones wait",
    )


def _held(pool: PoolSummary) -> str:
    """How many addresses are held after release, and when the first hold ends."""
    if pool.held_until is None:
        return ""
    return held_after_release(pool.held, pool.held_until)


class PoolController:
    """Owns the pool views, the pool side of the registry, pool status and the finalizer."""

    def __init__(
        self,
        registry: Registry,
        gateway: Gateway,
        scheduler: Scheduler,
        services: ServiceLookup,
    ) -> None:
        self.registry = registry
        self.gateway = gateway
        # What a pool change leaves the Services to do goes there (the dispatcher).
        self.scheduler = scheduler
        self.services = services
        self.views: dict[str, PoolView] = {}
        self._reserved: dict[RangeKind, dict[str, Sequence[str]]] = {k: {} for k in RangeKind}
        self._errors: dict[str, str] = {}
        self._blocked_reported: dict[str, tuple[str, ...]] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._queue = WorkQueue("IPPool")

    def rebuild(
        self,
        pools: Iterable[tuple[PoolView, PoolSpec]],
        reserved: Mapping[RangeKind, Mapping[str, Sequence[str]]],
    ) -> None:
        """Start-up, before the Services: every pool, ServiceCIDR and Node address known."""
        for kind, ranges in reserved.items():
            self._reserved[kind] = dict(ranges)
            self.registry.reserve(kind, ranges)
        for view, spec in pools:
            self.views[view.name] = view
            self._log_error(spec)
            self.registry.apply_pool(spec)
        self._mark(*self.views)

    async def observe(self, name: str, pool: tuple[PoolView, PoolSpec] | None) -> None:
        """A pool was added or changed (its view and spec) or deleted (None)."""
        if pool is None:
            self.views.pop(name, None)
            self._errors.pop(name, None)
            self._blocked_reported.pop(name, None)
            self._changed(self.registry.remove_pool(name))
            return
        view, spec = pool
        self.views[name] = view
        self._log_error(spec)
        self._changed(self.registry.apply_pool(spec), name)
        await self._queue.run(name, partial(self._protect, name))

    def reserved_changed(self, kind: RangeKind, name: str, ranges: Sequence[str] | None) -> None:
        """A ServiceCIDR's ranges or a Node's addresses changed (None: it went): pools stop
        offering what lies inside; Services holding such an address keep it and are told."""
        known = self._reserved[kind]
        if ranges is None:
            known.pop(name, None)
        else:
            known[name] = tuple(ranges)
        change = self.registry.reserve(kind, known)
        self._changed(change, *self.views)
        self.report_reserved_holders(change.reserved_holders)

    def known_reserved(self, kind: RangeKind, name: str) -> Sequence[str] | None:
        return self._reserved[kind].get(name)

    def report_reserved_holders(self, holders: Iterable[ReservedHolder]) -> None:
        for holder in holders:
            view = self.services.get(holder.key)
            if view is None:
                continue
            message = (
                f"holds {holder.address}, which {holder.source} uses itself: the Service keeps "
                "it, but no pool hands it out again once it is released"
            )
            log.warning("%s: %s", holder.key, message)
            self.gateway.event(
                view.reference, "Service", "ReservedAddressHeld", message, warning=True
            )

    async def run(self) -> None:
        """Write status and finalizers whenever pools or holdings change."""
        seen = -1
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH_INTERVAL)
            self._wake.clear()
            if self.registry.changes != seen:
                seen = self.registry.changes
                self._dirty.update(self.views)  # counts may have moved in any pool
            names, self._dirty = self._dirty, set()
            for name in sorted(names):
                try:
                    await self.sync(name)
                except Fenced:
                    return
                except Exception:
                    log.exception("IPPool %s: status update failed; retrying", name)
                    self._dirty.add(name)
            await asyncio.sleep(FLUSH_INTERVAL)

    async def sync(self, name: str) -> None:
        """Make one pool's finalizer and status what the registry says."""
        view = self.views.get(name)
        if view is None or not self.registry.has_pool(name):
            return
        if view.deleting:
            await self._finish_deletion(view, self.registry.holders(name))
            return
        status = desired_status(self.registry.pool_summary(name), view)
        if {k: view.status.get(k) for k in status} != status:
            await self.gateway.patch_pool(name, {"status": status}, status=True)
            # An edit seen during the write put a newer view: it stays, so its generation gets
            # a status of its own (put back, the older view said the status was up to date).
            if self.views.get(name) is view:
                self.views[name] = replace(view, status=status)

    def cancel(self) -> None:
        self._queue.cancel()

    def _changed(self, change: PoolChange, *names: str) -> None:
        self._mark(*names, *change.conflicts)
        then = Next()
        then.requeue((*change.revoked, *change.moving))
        then.retry_pending(pools_changed=True)
        self.scheduler.schedule(then)

    def _mark(self, *names: str) -> None:
        self._dirty.update(names)
        self._wake.set()

    def _log_error(self, spec: PoolSpec) -> None:
        """Bad pools are logged once per error, not once per event."""
        if spec.error is None:
            self._errors.pop(spec.name, None)
        elif self._errors.get(spec.name) != spec.error:
            self._errors[spec.name] = spec.error
            log.error("IPPool %s: %s", spec.name, spec.error)

    async def _protect(self, name: str) -> None:
        """Put the finalizer on a live pool; until it shows, the pool hands out nothing."""
        view = self.views.get(name)
        if view is not None and not view.deleting and FINALIZER not in view.finalizers:
            await self._set_finalizers(view, (*view.finalizers, FINALIZER))

    async def _finish_deletion(self, view: PoolView, holders: tuple[Any, ...]) -> None:
        if holders:
            names = tuple(str(h) for h in holders)
            if self._blocked_reported.get(view.name) != names:
                self._blocked_reported[view.name] = names
                shown = ", ".join(names[:20]) + (" …" if len(names) > 20 else "")
                self.gateway.event(
                    view.reference,
                    "IPPool",
                    "DeletionBlocked",
                    f"{len(names)} Services still hold addresses from this pool: {shown}; "
                    "it is deleted when the last one lets go",
                    warning=True,
                )
            return
        self._blocked_reported.pop(view.name, None)
        if FINALIZER in view.finalizers:
            await self._set_finalizers(view, tuple(f for f in view.finalizers if f != FINALIZER))

    async def _set_finalizers(self, view: PoolView, finalizers: tuple[str, ...]) -> None:
        # resourceVersion makes this a compare-and-swap; a conflict means a newer event is coming.
        patch = {
            "metadata": {"finalizers": list(finalizers), "resourceVersion": view.resource_version}
        }
        try:
            await self.gateway.patch_pool(view.name, patch, status=False)
        except Exception as error:
            if not is_status(error, 404, 409):
                raise

"""IPPool status and deletion: counts and conditions written in batches, the finalizer kept."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from lbipam.ipam.registry import PoolStatus, Registry
from lbipam.kube.writer import Fenced, Kube, is_status, now

FINALIZER = "lbipam.io/protection"
# Allocations mark pools dirty; one write per pool per interval keeps status writes off the
# allocation path while `kubectl get ippools` stays live.
FLUSH_INTERVAL = 0.5
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoolView:
    """What the operator keeps of one IPPool object."""

    name: str
    uid: str
    generation: int
    deleting: bool
    finalizers: tuple[str, ...]
    resource_version: str
    status: Mapping[str, Any]

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> PoolView:
        meta = body["metadata"]
        return cls(
            name=meta["name"],
            uid=meta.get("uid", ""),
            generation=int(meta.get("generation") or 0),
            deleting=bool(meta.get("deletionTimestamp")),
            finalizers=tuple(meta.get("finalizers") or ()),
            resource_version=meta.get("resourceVersion", ""),
            status=dict(body.get("status") or {}),
        )


def _condition(kind: str, ok: bool, reason: str, message: str, old: Mapping[str, Any]) -> Any:
    status = "True" if ok else "False"
    previous = {c.get("type"): c for c in old.get("conditions") or []}.get(kind, {})
    unchanged = previous.get("status") == status
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": previous.get("lastTransitionTime") if unchanged else now(),
    }


def desired_status(pool: PoolStatus, view: PoolView) -> dict[str, Any]:
    """The status block for one pool, from the registry's numbers."""
    if pool.error:
        ready = (False, "InvalidSpec", pool.error)
    elif pool.conflict_with:
        ready = (
            False,
            "Conflict",
            f"overlaps IPPool {pool.conflict_with}, which is older; "
            "this pool hands out nothing until the overlap is removed",
        )
    elif pool.disabled:
        ready = (False, "Disabled", "spec.disabled is true or the pool is being deleted")
    else:
        ready = (True, "Ready", "the pool hands out addresses")
    exhausted = (
        (True, "Exhausted", "no address left")
        if pool.exhausted
        else (False, "Available", f"{pool.available} addresses available")
    )
    old = view.status
    return {
        "observedGeneration": view.generation,
        "total": str(pool.total),
        "allocated": str(pool.allocated),
        "available": str(pool.available),
        "conditions": [
            _condition("Ready", *ready, old),
            _condition("Exhausted", *exhausted, old),
        ],
    }


class PoolStatusWriter:
    """Keeps each IPPool's status and finalizer equal to what the registry says."""

    def __init__(self, registry: Registry, kube: Kube) -> None:
        self.registry = registry
        self.kube = kube
        self.views: dict[str, PoolView] = {}
        self._dirty: set[str] = set()
        self._all = False
        self._wake = asyncio.Event()
        self._blocked_reported: dict[str, tuple[str, ...]] = {}

    def mark(self, *names: str) -> None:
        self._dirty.update(names)
        self._wake.set()

    def mark_all(self) -> None:
        self._all = True
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            names = set(self.views) if self._all else self._dirty & set(self.views)
            self._all = False
            self._dirty.clear()
            for name in sorted(names):
                try:
                    await self.sync(name)
                except Fenced:
                    return
                except Exception:
                    log.exception("IPPool %s: status update failed; retrying", name)
                    self.mark(name)
            await asyncio.sleep(FLUSH_INTERVAL)

    async def sync(self, name: str) -> None:
        view = self.views.get(name)
        if view is None or name not in self.registry.pool_names():
            return
        if view.deleting:
            await self._finish_deletion(view, self.registry.holders(name))
            return
        if FINALIZER not in view.finalizers:
            await self._set_finalizers(view, (*view.finalizers, FINALIZER))
        status = desired_status(self.registry.pool_status(name), view)
        if {k: view.status.get(k) for k in status} != status:
            await self.kube.patch_pool(name, {"status": status}, status=True)
            self.views[name] = replace(view, status=status)

    async def _finish_deletion(self, view: PoolView, holders: tuple[Any, ...]) -> None:
        if holders:
            names = tuple(str(h) for h in holders)
            if self._blocked_reported.get(view.name) != names:
                self._blocked_reported[view.name] = names
                shown = ", ".join(names[:20]) + (" …" if len(names) > 20 else "")
                self.kube.event(
                    {"apiVersion": "lbipam.io/v1alpha1", "name": view.name, "uid": view.uid},
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
            await self.kube.patch_pool(view.name, patch, status=False)
        except Exception as error:
            if not is_status(error, 404, 409):
                raise

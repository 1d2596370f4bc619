"""The dispatcher: the one place where what controllers leave to do becomes queue work.

Controllers never requeue. A Service reconcile fills a `Next` it is given; the pool
controller hands its own `Next` to `schedule`; only this module submits work. The rules:

1. One Service at a time. Reconciles of one Service never overlap; a failed one is retried
   with back-off instead of waiting for the Service's next change; nothing runs once the
   term is fenced, and what is queued is cancelled when it ends.
2. Nothing a reconcile leaves is queued before it is over, and it is queued even when the
   reconcile failed half-way (not when cancelled: the term is over): a Service it displaced
   must move all the same. So the other members of a sharing group (`Outcome.followers`)
   start only once the Service they follow has written its status and given back its
   claims: the claim on a shared address has passed to them by then. The controller records
   them only after that status write, or at once when it needed no write (it joined a group
   as its oldest member).
3. Within one result, Services go in the order recorded, each once: those a refused claim's
   blocked address displaced (never the Service deciding), those its decision displaced,
   its group's other members, then holders a released claim did not pass to, who claim the
   address themselves. For a pool change: Services whose address left every pool, then
   those holding one outside the pools they name.
4. Pending Services go after those, on the next turn of the loop, oldest first
   (creationTimestamp, then namespace/name), in one pass however many results asked:
   when an address may have been freed (a Service let go, a claim that kept one from
   others was dropped, a hold after release ended), and when pools changed, which also
   retries PreferDualStack Services served in one family only. A freed address alone
   does not retry those: most lack a family because no pool has it at all.
5. New namespace labels retry that namespace's pending and one-family Services, oldest first.
6. When holds after release end (the hold timer's one loop), the Services they were for
   go first, in namespace/name order, so their claims go; then the pending ones, as in 4.
   A Service that lets go of an address its pool holds does not retry pending ones: the
   address is not free.
7. The policy controller hears of a Service event after its reconcile, when the status is
   settled, and also of Services that were never ours (a policy of ours may name them).
   Requeued reconciles are not told: the Service itself did not change.
8. The echo of our own status write (the Service's next event, at the version the write
   made) goes nowhere: the write put what it shows in the view already, and a status write
   changes nothing a policy is built from. Handled, it repeated the whole decision.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Protocol

from lbipam.controllers.results import Next
from lbipam.controllers.services import ServiceController
from lbipam.controllers.workqueue import WorkQueue
from lbipam.ipam.requests import ServiceKey
from lbipam.objects import ServiceView


class ServiceListener(Protocol):
    """Told of every Service event once the Service's status is settled."""

    async def service_changed(self, key: ServiceKey) -> None: ...


class Dispatcher:
    """Runs Service events and turns every `Next` into queue work, by the rules above."""

    def __init__(self, services: ServiceController, listener: ServiceListener) -> None:
        self.services = services
        self.listener = listener
        self._queue = WorkQueue("Service")
        self._retry_scheduled = False
        self._retry_partial = False

    async def service_changed(self, key: ServiceKey, view: ServiceView | None) -> None:
        """A Service was added or changed (view) or deleted (None)."""
        if self.services.is_echo(key, view.resource_version if view else None):
            return
        if self.services.observe(key, view):
            await self._queue.run(key, partial(self._reconcile, key))
        await self.listener.service_changed(key)

    def namespace_changed(self, name: str, labels: Mapping[str, str] | None) -> None:
        self.schedule(self.services.namespace_changed(name, labels))

    def schedule(self, then: Next) -> None:
        """Queue what a controller's work left to do."""
        self._requeue(dict.fromkeys(then.services))
        if then.retry:
            self._requeue(sorted(then.retry, key=self.services.age))
        if then.pending:
            self._retry_partial |= then.pools_changed
            if not self._retry_scheduled:
                self._retry_scheduled = True
                asyncio.get_running_loop().call_soon(self._retry_pending)

    def cancel(self) -> None:
        """End of a term: queued reconciles must not act on this term's decisions."""
        self._queue.cancel()

    async def _reconcile(self, key: ServiceKey) -> None:
        then = Next()
        try:
            await self.services.reconcile(key, then)
        except Exception:
            self.schedule(then)  # not when cancelled: the term is over
            raise
        self.schedule(then)

    def _retry_pending(self) -> None:
        keys = self.services.pending
        if self._retry_partial:
            keys = keys | self.services.partial
        self._retry_scheduled = self._retry_partial = False
        self._requeue(sorted(keys, key=self.services.age))

    def _requeue(self, keys: Iterable[ServiceKey]) -> None:
        for key in keys:
            self._queue.submit(key, partial(self._reconcile, key))

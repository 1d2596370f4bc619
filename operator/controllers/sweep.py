"""The sweep: soon after start-up, then now and then, what no event told of is put right.

A Service deleted between the start-up list and Kopf's first listing sends no DELETED event;
without the sweep its address would stay taken until the next restart. Claims whose Service
let go while nobody watched are released the same way, and one kept for its youth again as
soon as it is past the grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from lbipam.controllers.dispatch import Dispatcher
from lbipam.controllers.services import ServiceController
from lbipam.ha.term import Fenced
from lbipam.ipam.requests import ServiceKey
from lbipam.kube.gateway import Gateway
from lbipam.memory import give_back
from lbipam.objects import ServiceView, service_key

log = logging.getLogger(__name__)
SWEEP_FIRST = 30.0  # seconds: Kopf's first listing is processed by then
SWEEP_EVERY = 600.0


class Sweeper:
    """Lets go of Services deleted unseen and collects claims nobody holds."""

    def __init__(
        self, services: ServiceController, dispatcher: Dispatcher, gateway: Gateway
    ) -> None:
        self.services = services
        self.dispatcher = dispatcher
        self.gateway = gateway

    async def run(self) -> None:
        await self.services.rebuilt.wait()
        try:
            # Claims of Services deleted while nobody watched go at once: the record is rebuilt.
            await self._pass()
            delay = SWEEP_FIRST
            while True:
                due = time.monotonic() + delay
                # A claim kept for its youth is looked at again once past the grace, not at
                # the next sweep: a leader cut off between its status write and the claim's
                # release, or another replica leading at once, left it, and it keeps the
                # address from everyone else meanwhile.
                while await self._until(due):
                    await self._pass(due=True)
                await self._pass(sweep=True)
                delay = SWEEP_EVERY
        except Fenced:
            return

    async def _until(self, due: float) -> bool:
        """Sleep until `due`, or until a claim kept for its youth may go, if sooner (then
        True); claims-only passes come at least a second apart."""
        claims = self.services.claims
        earliest = time.monotonic() + 1.0
        while (now := time.monotonic()) < due:
            if claims.recheck_at <= now and now >= earliest:
                return True
            claims.sooner.clear()
            wake = min(due, max(claims.recheck_at, earliest))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(claims.sooner.wait(), max(0.0, wake - now))
        return False

    async def _pass(self, sweep: bool = False, due: bool = False) -> None:
        """Sweep and collect the relisted claims; or collect those known, or only those
        whose grace is up (`due`)."""
        try:
            if sweep:
                await self.sweep(await self._unseen())
            self.dispatcher.schedule(await self.services.collect_claims(relist=sweep, due=due))
        except Fenced:
            raise
        except Exception:
            log.exception("sweep failed; the next one tries again")
        finally:
            give_back()

    async def _unseen(self) -> dict[ServiceKey, ServiceView]:
        """The views of Services the cluster's list did not show. The list is of metadata
        alone, and each listed Service is struck off as its page is read, so a sweep keeps no
        list of 5,000 keys: the leader's RSS rose at each sweep by what it allocated while the
        long-lived tables lived (bench/README.md § Soak)."""
        unseen = self.services.views.snapshot()

        def seen(body: dict[str, Any]) -> None:
            unseen.pop(service_key(body), None)

        await self.gateway.list_service_metadata(seen)
        return unseen

    async def sweep(self, unseen: Mapping[ServiceKey, ServiceView]) -> None:
        """Release what the views knew of and the cluster's list did not show, unless news
        came since."""
        views = self.services.views
        gone = [k for k, view in unseen.items() if views.get(k) is view]
        for key in sorted(gone):
            await self.dispatcher.service_changed(key, None)
        if gone:
            log.info("swept %d Services deleted while unwatched", len(gone))

"""The hold timer: one loop that ends holds after release once their time is up."""

from __future__ import annotations

import asyncio
import logging
import time

from lbipam.controllers.dispatch import Dispatcher
from lbipam.controllers.services import ServiceController
from lbipam.ha.term import Fenced

log = logging.getLogger(__name__)
# Seconds between looks: a hold ends at most this late; each look walks the holds once.
HOLD_TICK = 1.0


class HoldTimer:
    """Ends the holds whose time is up and hands what follows to the dispatcher.

    The end is read anew at each look (release time + the pool's releaseHold now), so a
    shortened releaseHold ends holds sooner without any timer to move.
    """

    def __init__(self, services: ServiceController, dispatcher: Dispatcher) -> None:
        self.services = services
        self.dispatcher = dispatcher

    async def run(self) -> None:
        await self.services.rebuilt.wait()
        while True:
            try:
                self.dispatcher.schedule(self.services.end_holds(time.time()))
            except Fenced:
                return
            except Exception:
                log.exception("ending holds after release failed; trying again")
            await asyncio.sleep(HOLD_TICK)

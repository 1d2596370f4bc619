"""A term's start-up, as named phases in one function: list, indexes synced, rebuild, ready.

Nothing is decided before every pool, every namespace's labels and every address held in
the cluster is known; Kopf's handlers wait at the `Gate` until then.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TypeVar

import kopf

from lbipam.ha.term import Term
from lbipam.ipam.pool import PoolSpec
from lbipam.ipam.registry import RangeKind, Registry
from lbipam.kube.client import Api
from lbipam.kube.gateway import KubeGateway
from lbipam.objects import PoolView, claim_view, node_addresses, service_view
from lbipam.runtime.metrics import Metrics
from lbipam.runtime.wiring import Controllers
from lbipam.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Indexes:
    """Kopf's indexes, handed over still empty by its start-up activity; Kopf fills them."""

    pools: kopf.Index[str, tuple[PoolView, PoolSpec]]
    namespaces: kopf.Index[str, dict[str, str]]
    service_cidrs: kopf.Index[str, tuple[str, ...]]


def _cancelled(future: asyncio.Future[T]) -> asyncio.Future[T]:
    future.cancel()
    return future


class Gate:
    """Where Kopf meets the start-up: its handlers wait here until the term is ready."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        # Phase 1 is done: Kopf may start.
        self.listed: asyncio.Future[Controllers] = loop.create_future()
        self._indexes: asyncio.Future[Indexes] = loop.create_future()
        self._handled = asyncio.Event()
        self._ready: asyncio.Future[Controllers] = loop.create_future()

    def hand_over(self, indexes: Indexes) -> None:
        """Kopf starts: its indexes, to be read once it has filled them."""
        if not self._indexes.done():
            self._indexes.set_result(indexes)

    async def enter(self) -> Controllers:
        """Every handler: the term's controllers, once it is ready.

        Kopf calls no handler before every index has its initial listing: the first call
        is what tells the start-up that the indexes are synced.
        """
        self._handled.set()
        return await asyncio.shield(self._ready)

    async def synced(self) -> Indexes:
        """The indexes, once Kopf has filled them."""
        indexes = await self._indexes
        await self._handled.wait()
        return indexes

    def open(self, controllers: Controllers) -> None:
        self._ready.set_result(controllers)

    def fail(self, error: Exception) -> None:
        """The start-up failed: the handlers waiting here fail too."""
        if not self.listed.done():
            self.listed.set_exception(error)
        else:
            self._ready.set_exception(error)

    @property
    def ready(self) -> bool:
        return self._ready.done() and not self._ready.cancelled() and not self._ready.exception()

    def close(self) -> None:
        """The term is over: whatever still waits here stops waiting, and the gate lets go of
        the term's controllers.

        The gate outlives the term, and a future keeps its result: a connection opened inside
        a handler keeps that handler's context (its cause, the memo, this gate) while pooled,
        so every term a replica had led stayed in memory whole (bench/README.md § Soak).
        """
        for waited in (self.listed, self._indexes, self._ready):
            waited.cancel()
        loop = asyncio.get_running_loop()
        self.listed = _cancelled(loop.create_future())
        self._indexes = _cancelled(loop.create_future())
        self._ready = _cancelled(loop.create_future())


async def start_up(gate: Gate, settings: Settings, api: Api, term: Term, metrics: Metrics) -> None:
    """Bring the term to ready; Kopf runs from the end of the list phase on."""
    try:
        # Phase 1, list: every Service, whose statuses are the record of held addresses, and
        # our claims, so a Service that lets go releases them even before the first sweep.
        # One paged list instead of a Kopf index (see `Controllers`).
        gateway = KubeGateway(api, term)
        listed = await gateway.list_services(lambda body: service_view(body, settings))
        claimed = await gateway.list_claims(claim_view) if settings.claim_addresses else []
        # Nodes too: an index would make Kopf's start-up quadratic in them as in Services
        # (1,000 Nodes: 29 s to ready). Kopf's watch then brings each one to the handler.
        nodes = await gateway.list_nodes(
            lambda body: (body["metadata"]["name"], node_addresses(body))
        )
        controllers = Controllers(settings, Registry(), gateway, metrics, listed, claimed)
        gate.listed.set_result(controllers)
        # Phase 2, indexes synced: pools, namespaces and ServiceCIDRs, all listed by Kopf.
        indexes = await gate.synced()
        # Phase 3, rebuild: every pool, every address the cluster uses itself and every held
        # address is known before any decision.
        pools, namespaces, cidrs = indexes.pools, indexes.namespaces, indexes.service_cidrs
        controllers.rebuild(
            (pool for name in pools for pool in pools[name]),
            {name: labels for name in namespaces for labels in namespaces[name]},
            {
                RangeKind.SERVICE_CIDR: {n: ranges for n in cidrs for ranges in cidrs[n]},
                RangeKind.NODE: dict(nodes),
            },
        )
    except Exception as error:
        if gate.listed.done():  # else the caller raises it: Kopf has not started
            log.exception("the start-up failed; this term ends")
            term.ended.set()
        gate.fail(error)
        return
    # Phase 4, ready: the handlers waiting at the gate go on; /readyz says so.
    gate.open(controllers)

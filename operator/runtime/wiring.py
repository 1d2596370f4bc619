"""One term of leadership, assembled in one place: every object built with what it needs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence

from lbipam.controllers.claims import AddressClaims
from lbipam.controllers.dispatch import Dispatcher
from lbipam.controllers.holds import HoldTimer
from lbipam.controllers.policies import PolicyController
from lbipam.controllers.pools import PoolController
from lbipam.controllers.services import ServiceController
from lbipam.controllers.sweep import Sweeper
from lbipam.controllers.views import ServiceViews
from lbipam.ipam.pool import PoolSpec
from lbipam.ipam.registry import RangeKind, Registry
from lbipam.kube.gateway import KubeGateway
from lbipam.objects import ClaimView, PoolView, ServiceView
from lbipam.runtime.metrics import Metrics
from lbipam.settings import Settings


class Controllers:
    """The registry and the controllers of one term; nothing carries over to the next.

    Services have no Kopf index: Kopf's start-up wait for indexes wakes every waiting object
    once per indexed object, which is quadratic in Services. They come as `listed`, read by
    one paged list before Kopf starts (see `runtime.startup`).
    """

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        gateway: KubeGateway,
        metrics: Metrics,
        listed: list[ServiceView],
        claimed: list[ClaimView],
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.gateway = gateway
        views = ServiceViews()
        claims = AddressClaims(gateway, settings.claim_addresses, registry)
        claims.rebuild(claimed)
        self.policies = PolicyController(gateway, metrics, settings, views)
        self.services = ServiceController(registry, gateway, metrics, views, claims)
        self.dispatcher = Dispatcher(self.services, self.policies)
        self.pools = PoolController(registry, gateway, self.dispatcher, views)
        sweeper = Sweeper(self.services, self.dispatcher, gateway)
        self._listed = listed
        self._loops = [
            asyncio.create_task(self.pools.run()),
            asyncio.create_task(sweeper.run()),
            asyncio.create_task(HoldTimer(self.services, self.dispatcher).run()),
        ]

    def rebuild(
        self,
        pools: Iterable[tuple[PoolView, PoolSpec]],
        namespace_labels: Mapping[str, Mapping[str, str]],
        reserved: Mapping[RangeKind, Mapping[str, Sequence[str]]],
    ) -> None:
        """Once, before the first decision: pools and the cluster's own addresses, then the
        Services listed at start; those holding one of the cluster's own addresses are told."""
        self.pools.rebuild(pools, reserved)
        self.services.rebuild(self._listed, namespace_labels)
        self._listed = []
        self.pools.report_reserved_holders(self.registry.reserved_holders())

    async def stop(self) -> None:
        """End of the term: nothing queued may act on its decisions; Events may go out."""
        for loop in self._loops:
            loop.cancel()
        self.dispatcher.cancel()
        self.pools.cancel()
        await self.gateway.events.drain()

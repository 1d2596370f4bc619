"""One term of leadership, assembled in one place: every object built with what it needs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence

from lbipam.controllers.claims import AddressClaims
from lbipam.controllers.policies import PolicyController
from lbipam.controllers.pools import PoolController
from lbipam.controllers.services import ServiceController
from lbipam.controllers.views import ServiceViews
from lbipam.ha.term import Term
from lbipam.ipam.pool import PoolSpec
from lbipam.ipam.registry import Registry
from lbipam.kube.client import Api
from lbipam.kube.writer import ApiWriter
from lbipam.objects import ClaimView, PoolView, ServiceView, claim_view, service_view
from lbipam.runtime.metrics import Metrics
from lbipam.settings import Settings


class Controllers:
    """The registry and the controllers of one term; nothing carries over to the next."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        writer: ApiWriter,
        metrics: Metrics,
        listed: list[ServiceView],
        claimed: list[ClaimView],
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.writer = writer
        views = ServiceViews()
        claims = AddressClaims(writer, registry, settings.claim_addresses)
        claims.rebuild(claimed)
        self.policies = PolicyController(writer, metrics, settings, views)
        self.services = ServiceController(
            registry, writer, metrics, views, claims, self.policies.service_changed
        )
        self.pools = PoolController(registry, writer, self.services)
        self._listed: list[ServiceView] | None = listed
        self._loops = [
            asyncio.create_task(self.pools.run()),
            asyncio.create_task(self.services.sweep_forever()),
        ]

    @classmethod
    async def start(cls, settings: Settings, api: Api, term: Term, metrics: Metrics) -> Controllers:
        """Read every Service first: their statuses are the record of held addresses; and
        our claims, so a Service that lets go releases its claims even before the first sweep.

        One paged list instead of a Kopf index: Kopf's start-up wait for indexes wakes every
        waiting object once per indexed object, which is quadratic in Services.
        """
        writer = ApiWriter(api, term)
        listed = await writer.list_services(lambda body: service_view(body, settings))
        claimed = await writer.list_claims(claim_view) if settings.claim_addresses else []
        return cls(settings, Registry(), writer, metrics, listed, claimed)

    @property
    def rebuilt(self) -> bool:
        return self._listed is None

    def rebuild(
        self,
        pools: Iterable[tuple[PoolView, PoolSpec]],
        namespace_labels: Mapping[str, Mapping[str, str]],
        service_cidrs: Mapping[str, Sequence[str]],
    ) -> None:
        """Once, before the first decision: pools, then the Services listed at start."""
        if self._listed is None:
            return
        self.pools.rebuild(pools, service_cidrs)
        self.services.rebuild(self._listed, namespace_labels)
        self._listed = None

    async def stop(self) -> None:
        """End of the term: nothing queued may act on its decisions; Events may go out."""
        for loop in self._loops:
            loop.cancel()
        self.services.cancel()
        self.pools.cancel()
        await self.writer.events.drain()

"""One term of leadership, assembled in one place: every object built with what it needs."""

from __future__ import annotations

import asyncio
import weakref
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

# Every term's controllers still in memory. One that ended goes at the next collection; if
# it stays, whatever keeps it keeps the term's whole state (debug gauge `terms_in_memory`).
_IN_MEMORY: weakref.WeakSet[Controllers] = weakref.WeakSet()


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
        self.views = views = ServiceViews()
        self.claims = claims = AddressClaims(gateway, settings.claim_addresses, registry)
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
        _IN_MEMORY.add(self)

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

    def tables(self) -> dict[str, int]:
        """Entries of the term's in-memory tables, for the debug gauges: each must follow the
        Services, pools and addresses that exist, never grow with every one ever seen.

        Reads the owners' private tables (read-only, on the event loop): a debug view that
        would otherwise need a size method on every class.
        """
        holdings, services, policies = self.registry._holdings, self.services, self.policies
        return {
            "service_views": len(self.views),
            "registry_pools": len(self.registry.pool_names()),
            "registry_holders": len(holdings._holders),
            "registry_bare": len(holdings._bare),
            "registry_addresses": len(holdings._owners),
            "registry_groups": len(holdings._groups),
            "registry_blocked": len(holdings._blocked),
            "claims": len(self.claims._ours),
            "claims_by_service": len(self.claims._by_parent),
            "services_pending": len(services.pending),
            "services_partial": len(services.partial),
            "services_first_seen": len(services._first_seen),
            "namespace_labels": len(services._namespace_labels),
            "policies_managed": len(policies.managed),
            "policies_warned": len(policies._warned),
            "pool_views": len(self.pools.views),
            "pool_errors": len(self.pools._errors),
            "pool_blocked_reported": len(self.pools._blocked_reported),
            "terms_in_memory": len(_IN_MEMORY),
            # ServiceCIDRs and Node addresses, by kind and name: they follow Nodes that come and go.
            "reserved_ranges": sum(len(ranges) for ranges in self.pools._reserved.values()),
        }

    async def stop(self) -> None:
        """End of the term: nothing queued may act on its decisions; Events may go out."""
        for loop in self._loops:
            loop.cancel()
        self.dispatcher.cancel()
        self.pools.cancel()
        await self.gateway.events.drain()

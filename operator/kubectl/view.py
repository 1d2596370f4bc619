"""The operator's view of a snapshot: its registry rebuilt from pools, ServiceCIDRs and the
addresses Services hold, exactly as a newly elected leader rebuilds it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from lbipam.controllers.claims import recorded_holds
from lbipam.ipam.registry import PoolChange, PoolSummary, RangeKind, Registry
from lbipam.ipam.requests import ServiceKey
from lbipam.kubectl.cluster import Body, Snapshot
from lbipam.objects import (
    claim_view,
    held_addresses,
    is_handled,
    pool_spec,
    service_key,
    service_request,
)
from lbipam.settings import Settings


@dataclass
class View:
    snapshot: Snapshot
    settings: Settings
    registry: Registry = field(default_factory=Registry)

    def __post_init__(self) -> None:
        self.registry.reserve(RangeKind.SERVICE_CIDR, self.snapshot.service_cidrs)
        for pool in self.snapshot.pools:
            self.registry.apply_pool(pool_spec(pool))
        self.registry.rebuild(service_request(s, self.namespace_labels(s)) for s in self.handled())

    def restore_holds(self, claims: Iterable[Body]) -> None:
        """The holds after release lbipam's claims record, as a new leader restores them."""
        self.registry.restore_holds(recorded_holds(map(claim_view, claims)))

    def holds(self) -> dict[str, list[tuple[str, str]]]:
        """Pool name -> its addresses held after release, each with who it is held for and
        until when (after `restore_holds`)."""
        by_pool: dict[str, list[tuple[str, str]]] = {}
        for address, described in self.registry.holds_after_release():
            if (pool := self.registry.pool_of(address)) is not None:
                by_pool.setdefault(pool, []).append((address, described))
        return by_pool

    def namespace_labels(self, service: Body) -> Mapping[str, str]:
        return self.snapshot.namespaces.get(service["metadata"]["namespace"]) or {}

    def handles(self, service: Body) -> bool:
        """Whether lbipam handles the Service: a LoadBalancer of its class."""
        return is_handled(service, self.settings)

    def handled(self) -> list[Body]:
        """The Services lbipam handles, by namespace and name."""
        return [s for s in self.snapshot.services if self.handles(s)]

    def pool(self, name: str) -> Body | None:
        return next((p for p in self.snapshot.pools if p["metadata"]["name"] == name), None)

    def summary(self, name: str) -> PoolSummary:
        return self.registry.pool_summary(name)

    def holders(self) -> dict[str, list[tuple[ServiceKey, tuple[str, ...]]]]:
        """Pool name -> the Services holding its addresses, with those addresses."""
        by_pool: dict[str, dict[ServiceKey, list[str]]] = {}
        for service in self.snapshot.services:
            for address in held_addresses(service):
                pool = self.registry.pool_of(address)
                if pool is not None:
                    by_pool.setdefault(pool, {}).setdefault(service_key(service), []).append(
                        address
                    )
        return {
            pool: [(key, tuple(addresses)) for key, addresses in sorted(keys.items())]
            for pool, keys in by_pool.items()
        }

    def try_pool(self, body: Mapping[str, Any], created: str) -> PoolChange:
        """Apply a pool from a file as if it were in the cluster (protected, made at `created`)."""
        spec = replace(pool_spec(body), created=created, protected=True)
        return self.registry.apply_pool(spec)

"""Prometheus metrics: counters of what happened, gauges recomputed from the registry on scrape."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from lbipam.ipam.addresses import FAMILY_NAMES
from lbipam.ipam.registry import Registry
from lbipam.ipam.requests import Outcome

# Allocation normally takes milliseconds; the tail covers a slow or restarting API server.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _PoolCollector(Collector):
    """Pool capacity read from the registry at scrape time, so it cannot drift."""

    def __init__(self, registry: Registry) -> None:
        self.source = registry

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["pool", "family"]
        total = GaugeMetricFamily(
            "lbipam_pool_addresses_total", "Usable addresses in the pool.", labels=labels
        )
        allocated = GaugeMetricFamily(
            "lbipam_pool_addresses_allocated",
            "Addresses of the pool held by Services.",
            labels=labels,
        )
        available = GaugeMetricFamily(
            "lbipam_pool_addresses_available", "Addresses of the pool still free.", labels=labels
        )
        for name in self.source.pool_names():
            for counts in self.source.pool_summary(name).counts:
                key = [name, FAMILY_NAMES[counts.family]]
                total.add_metric(key, float(counts.total))
                allocated.add_metric(key, float(counts.allocated))
                available.add_metric(key, float(counts.available))
        yield from (total, allocated, available)


class Metrics:
    """Every metric of docs/reference.md, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.allocations = Counter(
            "lbipam_allocations",
            "Allocation attempts by pool and result.",
            ["pool", "result"],
            registry=self.registry,
        )
        self.failures = Counter(
            "lbipam_allocation_failures",
            "Failed allocations by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.releases = Counter(
            "lbipam_releases", "Addresses released by pool.", ["pool"], registry=self.registry
        )
        self.latency = Histogram(
            "lbipam_allocation_latency_seconds",
            "From the Service first seen without an address to its status written.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.pending = Gauge(
            "lbipam_services_pending",
            "Handled Services without an address.",
            registry=self.registry,
        )
        self.policies = Gauge(
            "lbipam_networkpolicies_managed",
            "NetworkPolicies lbipam manages.",
            registry=self.registry,
        )
        self.leader = Gauge(
            "lbipam_leader", "1 on the replica that is leading.", registry=self.registry
        )

    @contextmanager
    def leading_with(self, registry: Registry) -> Iterator[None]:
        """While leading, report this term's pools; only the leader reports capacity, so
        sums over replicas stay right."""
        pools = _PoolCollector(registry)
        self.registry.register(pools)
        self.leader.set(1)
        try:
            yield
        finally:
            self.registry.unregister(pools)
            self.leader.set(0)
            self.pending.set(0)

    def record(self, outcome: Outcome, requested_pools: tuple[str, ...] = ()) -> None:
        """Count one written decision: an allocation per pool it drew from, or a failure."""
        if outcome.ok:
            pairs = zip(outcome.addresses, outcome.pools, strict=True)
            drawn = {pool for address, pool in pairs if address in outcome.allocated}
            for pool in sorted(drawn):
                self.allocations.labels(pool=pool, result="allocated").inc()
        else:
            pool = ",".join(requested_pools)
            self.allocations.labels(pool=pool, result="failed").inc()
            self.failures.labels(reason=outcome.reason.value).inc()

    def released(self, pools: Iterable[str | None]) -> None:
        for pool in pools:
            self.releases.labels(pool=pool or "").inc()

    def serve(self, port: int) -> None:
        start_http_server(port, registry=self.registry)

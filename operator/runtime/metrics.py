"""Prometheus metrics: counters of what happened, gauges from a snapshot of the registry."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from lbipam.ipam.addresses import FAMILY_NAMES
from lbipam.ipam.registry import PoolSummary, Registry
from lbipam.ipam.requests import Outcome, Reason

# Allocation normally takes milliseconds; the tail covers a slow or restarting API server.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# How stale a scrape's pool gauges may be; well under any scrape interval, and copying the
# pools at most this often keeps the copy's cost off every decision.
PUBLISH_INTERVAL = 0.25
# How often the table sizes are counted and stale failure series removed: a leak shows over
# minutes, not between two scrapes.
TABLE_INTERVAL = 5.0
# A failed series naming no pool that exists (a typo, a pool deleted before the failure) is
# kept this long after its last count, past a 5-minute rate() window, then removed: else every
# such name would stay for the life of the process.
FAILED_SERIES_KEEP = 600.0
# Counts the entries of the operator's own tables, by table name; called on the event loop.
TableCounter = Callable[[], Mapping[str, int]]


class PoolSnapshots:
    """The registry's pools, copied on the event loop whenever it changed.

    Only the loop that changes the registry reads it; the scrape thread reads `latest`, an
    immutable tuple replaced whole, so it sees one copy or the next, never a mix of both.
    """

    def __init__(self, registry: Registry, published: Callable[[frozenset[str]], None]) -> None:
        self.registry = registry
        self.latest: tuple[PoolSummary, ...] = ()
        self._published = published
        self._seen = -1

    def publish(self) -> None:
        """Copy the pools if the registry changed since the last copy; say which pools it has."""
        if self.registry.changes == self._seen:
            return
        self._seen = self.registry.changes
        summaries = []
        for name in self.registry.pool_names():
            try:
                summaries.append(self.registry.pool_summary(name))
            except KeyError:
                continue  # removed since it was listed: left out of this copy, not a failed copy
        self.latest = tuple(summaries)
        self._published(frozenset(summary.name for summary in summaries))

    async def run(self) -> None:
        while True:
            self.publish()
            await asyncio.sleep(PUBLISH_INTERVAL)


class _PoolCollector(Collector):
    """Pool capacity from the last snapshot the event loop published."""

    def __init__(self, snapshots: PoolSnapshots) -> None:
        self.snapshots = snapshots

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
        reserved = GaugeMetricFamily(
            "lbipam_pool_addresses_reserved",
            "Free addresses of the pool set aside by its reservations.",
            labels=labels,
        )
        held = GaugeMetricFamily(
            "lbipam_pool_addresses_held",
            "Allocated addresses of the pool held after release for a Service re-created soon.",
            labels=["pool"],
        )
        for summary in self.snapshots.latest:
            held.add_metric([summary.name], float(summary.held))
            for counts in summary.counts:
                key = [summary.name, FAMILY_NAMES[counts.family]]
                total.add_metric(key, float(counts.total))
                allocated.add_metric(key, float(counts.allocated))
                available.add_metric(key, float(counts.available))
                reserved.add_metric(key, float(counts.reserved))
        yield from (total, allocated, available, reserved, held)


class TableSizes:
    """Sizes of the operator's in-memory tables, counted on the event loop.

    A debug view for soak runs (tests/soak): a table that grows with every Service ever
    seen, not with the Services that exist, is a leak. Scrapes read `latest`, replaced whole.
    """

    def __init__(self) -> None:
        self.latest: tuple[tuple[str, int], ...] = ()
        self.count: TableCounter = dict  # set while leading

    def publish(self) -> None:
        self.latest = tuple(sorted(self.count().items()))


class _TableCollector(Collector):
    """Table sizes from the last count the event loop published."""

    def __init__(self, tables: TableSizes) -> None:
        self.tables = tables

    def collect(self) -> Iterator[GaugeMetricFamily]:
        entries = GaugeMetricFamily(
            "lbipam_debug_table_entries",
            "Entries in one of the operator's in-memory tables (debug).",
            labels=["table"],
        )
        for name, size in self.tables.latest:
            entries.add_metric([name], float(size))
        yield entries


class Metrics:
    """Every metric of docs/reference.md, in a Prometheus collector registry of its own."""

    def __init__(self) -> None:
        self.collector_registry = CollectorRegistry()
        self.allocations = Counter(
            "lbipam_allocations",
            "Allocation attempts by pool and result.",
            ["pool", "result"],
            registry=self.collector_registry,
        )
        self.failures = Counter(
            "lbipam_allocation_failures",
            "Failed allocations by reason.",
            ["reason"],
            registry=self.collector_registry,
        )
        # Every reason from 0: a counter's first sample shows no increase to rate(), so a
        # series made by the first failure would hide that failure from every dashboard.
        for reason in set(Reason) - {Reason.ALLOCATED}:
            self.failures.labels(reason=reason.value)
        self.releases = Counter(
            "lbipam_releases",
            "Addresses released by pool.",
            ["pool"],
            registry=self.collector_registry,
        )
        self.latency = Histogram(
            "lbipam_allocation_latency_seconds",
            "From the Service first seen without an address to its status written.",
            buckets=LATENCY_BUCKETS,
            registry=self.collector_registry,
        )
        self.pending = Gauge(
            "lbipam_services_pending",
            "Handled Services without an address.",
            registry=self.collector_registry,
        )
        self.policies = Gauge(
            "lbipam_networkpolicies_managed",
            "NetworkPolicies lbipam manages.",
            registry=self.collector_registry,
        )
        reg = self.collector_registry
        self.leader = Gauge("lbipam_leader", "1 on the replica that is leading.", registry=reg)
        self.tables = TableSizes()
        self.collector_registry.register(_TableCollector(self.tables))
        # Pools that may have series: those of the last copy and those counted since. Only
        # the event loop touches it. A failure's pool label is what the Service asked for,
        # which may name no pool at all; it goes with a pool a copy showed, or `tend` drops it.
        self._named: set[str] = set()
        self._shown: frozenset[str] = frozenset()  # the pools of the last copy
        self._failed: dict[str, float] = {}  # a failed series' pool label -> when last counted

    @contextlib.asynccontextmanager
    async def leading_with(
        self, registry: Registry, tables: TableCounter | None = None
    ) -> AsyncIterator[PoolSnapshots]:
        """While leading, report this term's pools; only the leader reports capacity, so
        sums over replicas stay right. `tables` counts the term's tables (debug gauges)."""
        snapshots = PoolSnapshots(registry, self._keep_series_of)
        snapshots.publish()
        publisher = asyncio.create_task(snapshots.run())
        self.tables.count = self._with_series(tables or dict)
        counter = asyncio.create_task(self._tending())
        pools = _PoolCollector(snapshots)
        self.collector_registry.register(pools)
        self.leader.set(1)
        try:
            yield snapshots
        finally:
            publisher.cancel()
            counter.cancel()
            self.tables.count = dict
            self.tables.latest = ()
            self.collector_registry.unregister(pools)
            self.leader.set(0)
            # A standby replica reports nothing it no longer manages.
            self.pending.set(0)
            self.policies.set(0)

    async def _tending(self) -> None:
        while True:
            self.tend()
            self.tables.publish()
            await asyncio.sleep(TABLE_INTERVAL)

    def tend(self) -> None:
        """Remove the failed series that name no pool of the last copy and were not counted
        for `FAILED_SERIES_KEEP` seconds."""
        expired = time.monotonic() - FAILED_SERIES_KEEP
        for label, last in list(self._failed.items()):
            if last > expired or any(name in self._shown for name in label.split(",")):
                continue
            del self._failed[label]
            with contextlib.suppress(KeyError):  # already gone with its pool
                self.allocations.remove(label, "failed")

    def _with_series(self, tables: TableCounter) -> TableCounter:
        """The term's tables and the label sets of the per-pool counters, which must shrink
        when pools go."""

        def count() -> dict[str, int]:
            counted = dict(tables())
            for name, counter in (("allocations", self.allocations), ("releases", self.releases)):
                counted[f"metric_series_{name}"] = sum(
                    1
                    for family in counter.collect()
                    for sample in family.samples
                    if sample.name.endswith("_total")
                )
            return counted

        return count

    def _keep_series_of(self, pools: frozenset[str]) -> None:
        """A pool gone from the registry leaves no series behind, its counters neither; also
        one made, counted and deleted between two copies, which no copy ever showed."""
        for pool in self._named - pools:
            # prometheus-client before 0.22 raises KeyError for a series never made.
            with contextlib.suppress(KeyError):
                self.releases.remove(pool)
            for result in ("allocated", "failed"):
                with contextlib.suppress(KeyError):
                    self.allocations.remove(pool, result)
        self._named = set(pools)
        self._shown = pools

    def record(self, outcome: Outcome, requested_pools: tuple[str, ...] = ()) -> None:
        """Count one written decision: an allocation per pool it drew from, or a failure."""
        if outcome.ok:
            pairs = zip(outcome.addresses, outcome.pools, strict=True)
            drawn = {pool for address, pool in pairs if address in outcome.allocated}
            for pool in sorted(drawn):
                self.allocations.labels(pool=pool, result="allocated").inc()
            self._named.update(drawn)
        else:
            pool = ",".join(requested_pools)
            self.allocations.labels(pool=pool, result="failed").inc()
            if pool:
                self._failed[pool] = time.monotonic()
            self.failures.labels(reason=outcome.reason.value).inc()

    def released(self, pools: Iterable[str | None]) -> None:
        for pool in pools:
            self.releases.labels(pool=pool or "").inc()
            if pool:
                self._named.add(pool)

    def serve(self, port: int) -> None:
        start_http_server(port, registry=self.collector_registry)

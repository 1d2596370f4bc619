"""What Prometheus would read after a scripted run of allocations, failures and releases."""

from __future__ import annotations

import asyncio
import threading

import pytest
from prometheus_client import generate_latest

from lbipam.ipam.pool import PoolSpec
from lbipam.ipam.registry import Registry
from lbipam.ipam.requests import ServiceKey, ServiceRequest
from lbipam.runtime import metrics as metrics_module
from lbipam.runtime.metrics import Metrics, PoolSnapshots


def request(name: str, **fields: object) -> ServiceRequest:
    return ServiceRequest(ServiceKey("shop", name), "2026-01-01T00:00:00Z", **fields)  # type: ignore[arg-type]


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.collector_registry.get_sample_value(name, labels)


async def test_capacity_gauges_follow_the_registry_and_counters_count_what_happened() -> None:
    registry = Registry()
    registry.apply_pool(PoolSpec("small", ("10.0.0.0/31", "fd00::/126")))
    metrics = Metrics()
    v4 = {"pool": "small", "family": "IPv4"}
    v6 = {"pool": "small", "family": "IPv6"}

    async with metrics.leading_with(registry) as pools:
        for name in ("a", "b"):
            metrics.record(registry.ensure(request(name)))
        metrics.record(registry.ensure(request("dual", family_policy="RequireDualStack")))
        metrics.record(registry.ensure(request("late")), requested_pools=())
        metrics.released(
            registry.pool_of(a) for a in registry.release(ServiceKey("shop", "a"), 0.0)
        )
        assert sample(metrics, "lbipam_pool_addresses_allocated", **v4) == 0  # not yet published
        pools.publish()

        assert sample(metrics, "lbipam_pool_addresses_total", **v4) == 2
        assert sample(metrics, "lbipam_pool_addresses_total", **v6) == 4
        assert sample(metrics, "lbipam_pool_addresses_allocated", **v4) == 1
        assert sample(metrics, "lbipam_pool_addresses_available", **v4) == 1
        assert sample(metrics, "lbipam_pool_addresses_allocated", **v6) == 0
        assert sample(metrics, "lbipam_allocations_total", pool="small", result="allocated") == 2
        assert sample(metrics, "lbipam_allocations_total", pool="", result="failed") == 2
        assert sample(metrics, "lbipam_allocation_failures_total", reason="PoolExhausted") == 2
        assert sample(metrics, "lbipam_releases_total", pool="small") == 1
        assert sample(metrics, "lbipam_leader") == 1

    assert sample(metrics, "lbipam_pool_addresses_total", **v4) is None
    assert sample(metrics, "lbipam_leader") == 0


async def test_the_publisher_copies_the_registry_by_itself_a_few_times_a_second() -> None:
    registry = Registry()
    metrics = Metrics()

    async with metrics.leading_with(registry):
        registry.apply_pool(PoolSpec("later", ("10.0.0.0/30",), allow_first_last_ips=True))
        for _ in range(40):  # up to 2 s: the publisher wakes every quarter second
            total = sample(metrics, "lbipam_pool_addresses_total", pool="later", family="IPv4")
            if total is not None:
                break
            await asyncio.sleep(0.05)

    assert total == 4


async def test_a_deleted_pool_leaves_no_series_behind() -> None:
    registry = Registry()
    registry.apply_pool(PoolSpec("going", ("10.0.0.0/30",)))
    registry.apply_pool(PoolSpec("staying", ("10.0.1.0/30",)))
    metrics = Metrics()

    async with metrics.leading_with(registry) as pools:
        metrics.record(registry.ensure(request("a", pools=("going",))), ("going",))
        metrics.record(registry.ensure(request("b", pools=("staying",))), ("staying",))
        metrics.released(
            registry.pool_of(a) for a in registry.release(ServiceKey("shop", "a"), 0.0)
        )
        pools.publish()
        assert sample(metrics, "lbipam_releases_total", pool="going") == 1
        registry.remove_pool("going")
        pools.publish()

        registry.apply_pool(PoolSpec("brief", ("10.0.2.0/30",)))
        metrics.record(registry.ensure(request("c", pools=("brief",))), ("brief",))
        registry.remove_pool("brief")  # made, used and gone between two copies
        pools.publish()

        scrape = generate_latest(metrics.collector_registry).decode()
        assert 'pool="going"' not in scrape
        assert 'pool="brief"' not in scrape
        assert sample(metrics, "lbipam_pool_addresses_total", pool="staying", family="IPv4") == 2
        assert sample(metrics, "lbipam_allocations_total", pool="staying", result="allocated") == 1


class PoolDeletedWhileListed(Registry):
    """A registry whose pool goes between `pool_names` and `pool_summary`."""

    def pool_names(self) -> list[str]:
        names = super().pool_names()
        self.remove_pool("going")
        return names


def test_a_pool_removed_between_listing_and_reading_is_left_out_of_the_snapshot() -> None:
    registry = PoolDeletedWhileListed()
    registry.apply_pool(PoolSpec("going", ("10.0.0.0/30",)))
    registry.apply_pool(PoolSpec("staying", ("10.0.1.0/30",)))
    published: list[frozenset[str]] = []
    snapshots = PoolSnapshots(registry, published.append)

    snapshots.publish()

    assert [summary.name for summary in snapshots.latest] == ["staying"]
    assert published == [frozenset({"staying"})]


async def test_scrapes_on_another_thread_never_fail_while_pools_come_and_go() -> None:
    registry = Registry()
    metrics = Metrics()
    scrapes, failures = 0, []
    done = threading.Event()

    def scrape_until_done() -> None:
        nonlocal scrapes
        while not done.is_set():
            try:
                text = generate_latest(metrics.collector_registry).decode()
                assert "lbipam_leader 1.0" in text
            except Exception as error:  # every failure is counted, none hidden
                failures.append(repr(error))
            scrapes += 1

    async with metrics.leading_with(registry) as pools:
        scraper = threading.Thread(target=scrape_until_done)
        scraper.start()
        for step in range(3000):
            registry.apply_pool(PoolSpec(f"p{step % 8}", (f"10.0.{step % 8}.0/28",)))
            registry.remove_pool(f"p{(step + 3) % 8}")
            pools.publish()
            if step % 100 == 0:
                await asyncio.sleep(0.001)  # the scrape thread gets its turns
        done.set()
        scraper.join()

    print(f"{scrapes} scrapes, {len(failures)} failed")
    assert scrapes > 0
    assert failures == []


def test_a_follower_reports_no_pool_gauges_so_sums_over_replicas_stay_right() -> None:
    registry = Registry()
    registry.apply_pool(PoolSpec("small", ("10.0.0.0/30",)))
    metrics = Metrics()

    assert sample(metrics, "lbipam_pool_addresses_total", pool="small", family="IPv4") is None
    assert sample(metrics, "lbipam_leader") == 0


async def test_an_ipv6_slash_64_is_reported_as_a_float_gauge() -> None:
    registry = Registry()
    registry.apply_pool(PoolSpec("huge", ("2001:db8::/64",)))
    metrics = Metrics()

    async with metrics.leading_with(registry):
        total = sample(metrics, "lbipam_pool_addresses_total", pool="huge", family="IPv6")

    assert total == float(2**64)


def test_every_failure_reason_is_counted_from_zero_so_the_first_failure_shows_in_a_rate() -> None:
    metrics = Metrics()

    assert sample(metrics, "lbipam_allocation_failures_total", reason="PoolExhausted") == 0
    assert sample(metrics, "lbipam_allocation_failures_total", reason="PortConflict") == 0
    assert sample(metrics, "lbipam_allocation_failures_total", reason="Allocated") is None


async def test_a_replica_that_stops_leading_reports_no_managed_policies() -> None:
    metrics = Metrics()

    async with metrics.leading_with(Registry()):
        metrics.policies.set(3)
        assert sample(metrics, "lbipam_networkpolicies_managed") == 3

    assert sample(metrics, "lbipam_networkpolicies_managed") == 0


async def test_addresses_held_after_release_are_counted_until_the_hold_ends() -> None:
    registry = Registry()
    registry.apply_pool(PoolSpec("stable", ("10.0.0.0/31",), release_hold=600.0))
    metrics = Metrics()

    async with metrics.leading_with(registry) as pools:
        registry.ensure(request("a"))
        registry.release(ServiceKey("shop", "a"), 1000.0)
        pools.publish()
        assert sample(metrics, "lbipam_pool_addresses_held", pool="stable") == 1
        assert sample(metrics, "lbipam_pool_addresses_allocated", pool="stable", family="IPv4") == 1

        registry.end_holds(1600.0)
        pools.publish()
        assert sample(metrics, "lbipam_pool_addresses_held", pool="stable") == 0


async def test_table_sizes_are_debug_gauges_of_the_leader_counting_per_pool_series_too() -> None:
    registry = Registry()
    registry.apply_pool(PoolSpec("gone", ("10.0.0.0/30",), allow_first_last_ips=True))
    metrics = Metrics()
    views = {"shop/a": 1, "shop/b": 2}

    def table(name: str) -> float | None:
        return sample(metrics, "lbipam_debug_table_entries", table=name)

    async with metrics.leading_with(registry, lambda: {"service_views": len(views)}) as pools:
        metrics.record(registry.ensure(request("a")))
        del views["shop/a"]
        metrics.tables.publish()
        assert table("service_views") == 1
        assert table("metric_series_allocations") == 1
        registry.remove_pool("gone")
        pools.publish()  # the deleted pool's series go
        metrics.tables.publish()
        assert table("metric_series_allocations") == 0

    assert table("metric_series_allocations") is None  # a follower counts nothing


async def test_a_failure_naming_a_pool_deleted_before_it_leaves_no_series_for_ever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = Registry()
    registry.apply_pool(PoolSpec("gone", ("10.0.0.0/30",), allow_first_last_ips=True))
    registry.apply_pool(PoolSpec("kept", ("10.0.1.0/32",)))
    metrics = Metrics()

    def failed(pool: str) -> float | None:
        return sample(metrics, "lbipam_allocations_total", pool=pool, result="failed")

    async with metrics.leading_with(registry) as pools:
        registry.remove_pool("gone")
        pools.publish()
        # Services still naming the deleted pool, naming a typo, naming a live pool (full for
        # the second), and naming none (all full by then).
        for named in (("gone",), ("typo",), ("kept",), ()):
            metrics.record(registry.ensure(request(f"asks-{named}", pools=named)), named)
            metrics.record(registry.ensure(request(f"more-{named}", pools=named)), named)
        metrics.tend()
        assert failed("gone") == 2 and failed("typo") == 2  # seen by scrapes for a while

        monkeypatch.setattr(metrics_module, "FAILED_SERIES_KEEP", 0.0)
        metrics.tend()
        assert failed("gone") is None and failed("typo") is None
        assert failed("kept") == 1  # its pool exists: it goes with the pool
        assert failed("") == 2  # no pool named: one series, kept

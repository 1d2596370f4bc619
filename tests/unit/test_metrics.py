"""What Prometheus would read after a scripted run of allocations, failures and releases."""

from __future__ import annotations

from lbipam.ipam.pool import PoolSpec
from lbipam.ipam.registry import Registry
from lbipam.ipam.requests import ServiceKey, ServiceRequest
from lbipam.runtime.metrics import Metrics


def request(name: str, **fields: object) -> ServiceRequest:
    return ServiceRequest(ServiceKey("shop", name), "2026-01-01T00:00:00Z", **fields)  # type: ignore[arg-type]


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_capacity_gauges_follow_the_registry_and_counters_count_what_happened() -> None:
    registry = Registry()
    registry.apply_pool(PoolSpec("small", ("10.0.0.0/31", "fd00::/126")))
    metrics = Metrics()
    leading = metrics.leading_with(registry)
    leading.__enter__()

    for name in ("a", "b"):
        metrics.record(registry.ensure(request(name)))
    metrics.record(registry.ensure(request("dual", family_policy="RequireDualStack")))
    metrics.record(registry.ensure(request("late")), requested_pools=())
    metrics.released(registry.pool_of(a) for a in registry.release(ServiceKey("shop", "a")))

    v4 = {"pool": "small", "family": "IPv4"}
    v6 = {"pool": "small", "family": "IPv6"}
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
    leading.__exit__(None, None, None)
    assert sample(metrics, "lbipam_pool_addresses_total", **v4) is None
    assert sample(metrics, "lbipam_leader") == 0


def test_a_follower_reports_no_pool_gauges_so_sums_over_replicas_stay_right() -> None:
    registry = Registry()
    registry.apply_pool(PoolSpec("small", ("10.0.0.0/30",)))
    metrics = Metrics()

    assert sample(metrics, "lbipam_pool_addresses_total", pool="small", family="IPv4") is None
    assert sample(metrics, "lbipam_leader") == 0


def test_an_ipv6_slash_64_is_reported_as_a_float_gauge() -> None:
    registry = Registry()
    registry.apply_pool(PoolSpec("huge", ("2001:db8::/64",)))
    metrics = Metrics()

    with metrics.leading_with(registry):
        total = sample(metrics, "lbipam_pool_addresses_total", pool="huge", family="IPv6")

    assert total == float(2**64)

"""Capacity and outcomes as a real Prometheus server scrapes them from the operator."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import pytest
from kubernetes import client

from tests.kit import (
    Pools,
    create,
    service_manifest,
    subnet,
    wait_address,
    wait_reason,
)
from tests.operator_process import OperatorProcess
from tests.prometheus import Prometheus


@pytest.fixture(scope="module")
def prometheus(operator: OperatorProcess) -> Iterator[Prometheus]:
    server = Prometheus(operator.metrics_port)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_prometheus_sees_pool_capacity_per_family_and_allocations(
    core: client.CoreV1Api, pools: Pools, namespace: str, prometheus: Prometheus
) -> None:
    pool = pools.create([f"{subnet()}.0/28", "fd00:77::/120"])
    create(core, namespace, service_manifest("a"))
    create(core, namespace, service_manifest("b"))
    create(core, namespace, service_manifest("dual", ipFamilyPolicy="RequireDualStack"))
    for name in ("a", "b"):
        wait_address(core, namespace, name)
    wait_address(core, namespace, "dual", count=2)

    selector = f'pool="{pool}"'
    prometheus.wait_value(f'lbipam_pool_addresses_total{{{selector},family="IPv4"}}', 16)
    prometheus.wait_value(f'lbipam_pool_addresses_total{{{selector},family="IPv6"}}', 256)
    prometheus.wait_value(f'lbipam_pool_addresses_allocated{{{selector},family="IPv4"}}', 3)
    prometheus.wait_value(f'lbipam_pool_addresses_allocated{{{selector},family="IPv6"}}', 1)
    prometheus.wait_value(f'lbipam_pool_addresses_available{{{selector},family="IPv4"}}', 13)
    prometheus.wait_value(f'lbipam_pool_addresses_available{{{selector},family="IPv6"}}', 255)
    prometheus.wait_value(f'lbipam_allocations_total{{{selector},result="allocated"}}', 3)
    prometheus.wait_value("lbipam_leader", 1)


def test_prometheus_sees_pending_services_and_failures(
    core: client.CoreV1Api, pools: Pools, namespace: str, prometheus: Prometheus
) -> None:
    pools.create([f"{subnet()}.9"])
    before = prometheus.value('lbipam_allocation_failures_total{reason="PoolExhausted"}') or 0
    create(core, namespace, service_manifest("first"))
    wait_address(core, namespace, "first")
    create(core, namespace, service_manifest("second"))
    wait_reason(core, namespace, "second", "PoolExhausted")

    prometheus.wait_at_least("lbipam_services_pending", 1)
    prometheus.wait_at_least('lbipam_allocation_failures_total{reason="PoolExhausted"}', before + 1)


def test_the_live_endpoint_passes_promtool_lint(operator: OperatorProcess) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: apt-get install -y prometheus", False)
    scrape = operator.metrics()

    result = subprocess.run(
        [promtool, "check", "metrics"], input=scrape, capture_output=True, text=True
    )

    # docs/reference.md names the pool-size gauge lbipam_pool_addresses_total (as MetalLB's
    # metallb_allocator_addresses_total); that name is the one finding the lint may report.
    findings = [line for line in result.stderr.splitlines() if line.strip()]
    assert "lbipam_pool_addresses_total" in scrape
    assert findings in (
        [],
        ['lbipam_pool_addresses_total non-counter metrics should not have "_total" suffix'],
    ), result.stderr

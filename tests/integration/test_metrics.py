"""Capacity and outcomes as a real Prometheus server scrapes them from the operator."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.controlplane.cluster import die_with_parent, free_port
from tests.kit import (
    Pools,
    create,
    eventually,
    service_manifest,
    subnet,
    wait_address,
    wait_reason,
)
from tests.operator_process import OperatorProcess


class Prometheus:
    """Debian's prometheus server, scraping the operator every second."""

    def __init__(self, target_port: int) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus is not installed: apt-get install -y prometheus", False)
        self.folder = Path(tempfile.mkdtemp(prefix="lbipam-prometheus-"))
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "lbipam",
                    "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}],
                }
            ],
        }
        (self.folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = open(self.folder / "prometheus.log", "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            [
                binary,
                f"--config.file={self.folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )

    def get(self, path: str) -> dict[str, object]:
        url = f"http://127.0.0.1:{self.port}{path}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return dict(json.loads(response.read()))

    def wait_ready(self) -> None:
        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2):
                    return True
            except OSError:
                return False

        eventually(ready, timeout=30, what="Prometheus to be ready")

    def value(self, query: str) -> float | None:
        """The single value of an instant query, or None when it has no result."""
        data = self.get("/api/v1/query?" + urllib.parse.urlencode({"query": query}))
        result = data["data"]["result"]  # type: ignore[index]
        return float(result[0]["value"][1]) if result else None

    def wait_value(self, query: str, expected: float, timeout: float = 20) -> None:
        try:
            eventually(lambda: self.value(query) == expected, timeout=timeout, what=query)
        except AssertionError as error:
            raise AssertionError(f"{error}: {self.value(query)} != {expected}") from None

    def stop(self) -> None:
        self.popen.terminate()
        self.popen.wait(10)
        self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)


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

    eventually(
        lambda: (prometheus.value("lbipam_services_pending") or 0) >= 1,
        timeout=20,
        what="lbipam_services_pending >= 1",
    )
    eventually(
        lambda: (
            (prometheus.value('lbipam_allocation_failures_total{reason="PoolExhausted"}') or 0)
            > before
        ),
        timeout=20,
        what="a PoolExhausted failure counted",
    )


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

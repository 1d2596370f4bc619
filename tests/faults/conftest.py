"""Fault-case fixtures: the integration fixtures, a burst of Services, a report per case."""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.controlplane import ControlPlane
from tests.faults.burst import Burst
from tests.faults.chaos import Env
from tests.faults.checker import Held, Monitor, Snapshot, Verdict, converge, snapshot
from tests.operator_process import OperatorProcess


@dataclass
class CaseReport:
    """One line of the suite's closing table."""

    case: str
    services: int = 0
    faults: list[str] = field(default_factory=list)
    violations: int = 0
    converge_seconds: float = 0.0  # after the burst's last write
    since_fault: float = 0.0  # after the last fault was injected (burst included)
    notes: str = ""


REPORTS: list[CaseReport] = []
CHAOS_REPORTS: list[str] = []  # one line per chaos run: seed, steps, steps/min, failures


class Case:
    """What a fault case does, in its own words: start a burst, inject, converge, report."""

    def __init__(
        self, name: str, plane: ControlPlane, api: client.ApiClient, namespace: str
    ) -> None:
        self.report = CaseReport(name)
        self.plane = plane
        self.api = api
        self.namespace = namespace
        self.bursts: list[Burst] = []
        self.monitor = Monitor(str(plane.kubeconfig), namespace).ready()
        self.last_fault = time.monotonic()

    def burst(self, **options: Any) -> Burst:
        burst = Burst(self.plane, self.namespace, **options)
        self.bursts.append(burst)
        burst.start()
        return burst

    def fault(self, what: str) -> None:
        self.report.faults.append(what)
        self.last_fault = time.monotonic()

    def snapshot(self) -> Snapshot:
        return snapshot(self.api)

    def converge(
        self,
        before: Snapshot | None = None,
        *,
        may_flap: Callable[[Held, str], bool] | None = None,
        **options: Any,
    ) -> Verdict:
        """Wait for the burst to end and the promise to hold; add every flap the watch saw.

        `may_flap` (default: `may_move`) names losses the watch may see on the way, such as
        a status the case itself overwrote.
        """
        for burst in self.bursts:
            burst.finish()
        verdict, seconds = converge(self.api, before, **options)
        verdict.violations += self.monitor.violations(self.api, may_flap or options.get("may_move"))
        self.report.services = max(
            self.report.services, sum(len(b.created) for b in self.bursts) or verdict.handled
        )
        self.report.violations = len(verdict.violations)
        self.report.converge_seconds = seconds
        self.report.since_fault = time.monotonic() - self.last_fault
        return verdict

    def stop(self) -> None:
        for burst in self.bursts:
            if burst.is_alive():
                burst.stop()
        self.monitor.stop()


@pytest.fixture
def case(
    request: pytest.FixtureRequest,
    control_plane: ControlPlane,
    api: client.ApiClient,
    namespace: str,
) -> Iterator[Case]:
    made = Case(request.node.name, control_plane, api, namespace)
    yield made
    made.stop()
    REPORTS.append(made.report)


@pytest.fixture(autouse=True)
def healthy_afterwards(control_plane: ControlPlane, operator: OperatorProcess) -> Iterator[None]:
    """Whatever a case did, the next test finds the control plane and the operator up."""
    yield
    if not control_plane.apiserver.running():
        control_plane.apiserver.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if control_plane.get("/readyz", timeout=2)[0] == 200:
                break
        except OSError:
            pass
        time.sleep(0.2)
    if operator.popen is None or operator.popen.poll() is not None:
        operator.start()
    operator.wait_ready()


@pytest.fixture
def chaos(
    control_plane: ControlPlane,
    api: client.ApiClient,
    operator: OperatorProcess,
    operator_kubeconfig: Path,
) -> Iterator[Env]:
    """The cluster without the session operator: each chaos episode brings two replicas."""
    operator.stop()
    try:
        yield Env(control_plane, api, operator_kubeconfig)
    finally:
        operator.start()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    write = terminalreporter.write_line
    if CHAOS_REPORTS:
        terminalreporter.section("chaos")
        for line in CHAOS_REPORTS:
            write(line)
    if not REPORTS:
        return
    terminalreporter.section("fault cases")
    write(f"{'case':60} {'Services':>8} {'violations':>10} {'converge':>9} {'(fault)':>8}  faults")
    for r in REPORTS:
        write(
            f"{r.case[:60]:60} {r.services:>8} {r.violations:>10} "
            f"{r.converge_seconds:>8.1f}s {r.since_fault:>7.1f}s  {'; '.join(r.faults)}"
            + (f"  [{r.notes}]" if r.notes else "")
        )


def log_text(process: OperatorProcess, offset: int = 0) -> str:
    with open(process.log_path, "rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def log_size(process: OperatorProcess) -> int:
    return Path(process.log_path).stat().st_size


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def _etcd(plane: ControlPlane, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        plane.etcd_url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def etcd_revision(plane: ControlPlane) -> int:
    answer = _etcd(plane, "/v3/kv/range", {"key": base64.b64encode(b"a").decode()})
    return int(answer["header"]["revision"])


def compact_etcd(plane: ControlPlane) -> int:
    """Compact etcd at its current revision (physically); returns that revision."""
    revision = etcd_revision(plane)
    _etcd(plane, "/v3/kv/compaction", {"revision": str(revision), "physical": True})
    return revision

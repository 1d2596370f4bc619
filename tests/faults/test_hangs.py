"""The control plane hangs, or the network drops packets, under a leader mid-burst.

Three promises, checked against the API server's own audit log of each replica's writes:
(a) the leader stops writing once its renew deadline passes, even with its requests stuck;
(b) nothing it decided before the fault lands after another replica took over;
(c) afterwards every Service converges and no address is held twice.
Each case records how long the leader took to stop, until a replica led again and until every
Service converged (build/faults-hangs.json and the "fault cases" table at the end of the run).

The 120 s cases outlast the API server's own minute (a request waiting on a frozen etcd ends in
504 then), where 30 s outlasts only the Lease; they run in `make test` like the rest, one after
another, as each freezes or cuts off the one control plane the module shares.
"""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Iterator

import pytest

from tests.controlplane import ControlPlane
from tests.faults.conftest import Case
from tests.faults.hangs import AuditedApiServer, Fault, freeze
from tests.faults.partition import Partition
from tests.faults.replicas import Replicas
from tests.kit import Pools, subnet

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def audit(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AuditedApiServer]:
    audited = AuditedApiServer(control_plane, tmp_path_factory.mktemp("audit"))
    yield audited
    audited.close()


def _start(pair: Replicas) -> Iterator[Replicas]:
    try:
        pair.start()
        yield pair
    finally:
        pair.cleanup()


@pytest.fixture
def replicas(
    audit: AuditedApiServer,
    control_plane: ControlPlane,
    namespace: str,
    without_session_operator: None,
) -> Iterator[Replicas]:
    """Two replicas, each writing as its own user; the first leads."""
    pair = Replicas(control_plane, namespace)
    for index, replica in enumerate(pair.all):
        replica.env["KUBECONFIG"] = str(audit.kubeconfig(index))
    yield from _start(pair)


@pytest.fixture
def partition(control_plane: ControlPlane) -> Iterator[Partition]:
    if os.geteuid() != 0:
        pytest.fail("the partition case creates a network namespace and needs root")
    made = Partition(control_plane)
    try:
        yield made
    finally:
        made.heal()
        made.close()


@pytest.fixture
def cut_off(
    audit: AuditedApiServer,
    control_plane: ControlPlane,
    namespace: str,
    partition: Partition,
    without_session_operator: None,
) -> Iterator[Replicas]:
    """Two replicas; the first, which leads, reaches the API server through the partition."""
    pair = Replicas(control_plane, namespace)
    pair.behind(partition, audit.kubeconfig(0))
    pair.all[1].env["KUBECONFIG"] = str(audit.kubeconfig(1))
    yield from _start(pair)


def _mid_burst(case: Case, pools: Pools, seconds: float) -> None:
    pools.create([f"{subnet()}.0/24"])
    # The burst waits out the fault (an etcd stall answers 504 after the API server's minute).
    case.burst(creates=200, patience=seconds + 120).wait_created(60)


def _judge(
    case: Case,
    fault: Fault,
    audit: AuditedApiServer,
    replicas: Replicas,
    backlog_until: datetime.datetime | None = None,
) -> None:
    verdict = case.converge(fault.before, timeout=180, context=lambda: replicas.logs(30))
    timings = fault.measure(audit, backlog_until)
    case.report.notes = timings.line()
    assert verdict, "(c) the promise holds again"
    assert timings.stopped is not None, "(a) the leader's term never ended"
    assert timings.stopped <= fault.renew_deadline + 1.0, "(a) the leader stopped late"
    assert timings.trespasses == [], "(a, b) writes landed that their author had no right to"


FREEZES = [
    pytest.param("apiserver", 5, id="kube-apiserver-5s"),
    pytest.param("apiserver", 30, id="kube-apiserver-30s"),
    pytest.param("apiserver", 120, id="kube-apiserver-120s"),
    pytest.param("etcd", 5, id="etcd-5s"),
    pytest.param("etcd", 30, id="etcd-30s"),
    pytest.param("etcd", 120, id="etcd-120s"),
]


@pytest.mark.parametrize(("component", "seconds"), FREEZES)
def test_a_frozen_control_plane_mid_burst_stops_the_leader_and_lands_nothing_stale(
    case: Case,
    pools: Pools,
    control_plane: ControlPlane,
    audit: AuditedApiServer,
    replicas: Replicas,
    component: str,
    seconds: float,
) -> None:
    _mid_burst(case, pools, seconds)
    fault = Fault(case.report.case, seconds, replicas, case.snapshot())

    freeze(getattr(control_plane, component), seconds)
    case.fault(f"{component} SIGSTOPped for {seconds}s, then SIGCONT")
    # A frozen API server reads, when it resumes, what it was sent meanwhile.
    thawed = datetime.datetime.now() + datetime.timedelta(seconds=1)

    _judge(case, fault, audit, replicas, thawed if component == "apiserver" else None)


@pytest.mark.parametrize("seconds", [pytest.param(30, id="30s"), pytest.param(120, id="120s")])
def test_a_leader_cut_off_by_dropped_packets_stops_and_lands_nothing_stale(
    case: Case,
    pools: Pools,
    audit: AuditedApiServer,
    partition: Partition,
    cut_off: Replicas,
    seconds: float,
) -> None:
    _mid_burst(case, pools, seconds)
    leader = cut_off.leader()
    assert leader is cut_off.all[0], "the replica behind the partition leads"
    fault = Fault(case.report.case, seconds, cut_off, case.snapshot())

    partition.cut()
    case.fault(f"packets between the leader and the API server dropped for {seconds}s")
    # The other replica takes over and serves everyone while the leader is still cut off.
    assert case.converge(fault.before, timeout=seconds, context=lambda: cut_off.logs(30))
    fault.converged()
    time.sleep(max(0.0, seconds - (time.monotonic() - fault.started)))
    partition.heal()
    case.fault("packets flow again")

    _judge(case, fault, audit, cut_off)

"""The operator's process fails: killed outright, or one of two replicas loses its Lease."""

from __future__ import annotations

import datetime
import signal
import time
from collections.abc import Iterator

import pytest
from kubernetes import client

from tests.controlplane import ControlPlane
from tests.faults.conftest import Case, log_size, log_text
from tests.faults.replicas import Replicas, identity, leading, moments, wait_for
from tests.kit import Pools, subnet
from tests.operator_process import OperatorProcess
from tests.soak.sampler import tables_of

pytestmark = pytest.mark.faults


def test_a_killed_operator_restarted_after_a_pause_moves_nobody(
    case: Case, pools: Pools, operator: OperatorProcess
) -> None:
    pools.create([f"{subnet()}.0/24"])
    burst = case.burst(creates=250)
    burst.wait_created(80)

    before = case.snapshot()
    operator.kill()
    case.fault("kill -9 mid-burst")
    time.sleep(3)
    operator.start()
    case.fault("restarted after 3s")

    assert case.converge(before)


@pytest.fixture
def replicas(
    control_plane: ControlPlane, operator: OperatorProcess, namespace: str
) -> Iterator[Replicas]:
    """Two replicas electing a leader in the test's namespace; the session operator rests."""
    operator.stop()
    pair = Replicas(control_plane, namespace)
    try:
        pair.start()
        yield pair
    finally:
        pair.cleanup()
        operator.start()


def _terms(replica: OperatorProcess) -> list[tuple[datetime.datetime, datetime.datetime]]:
    """The replica's terms: (became leader, fenced off or stopped handling)."""
    began = moments(replica, f"{identity(replica)} became leader")
    ended = sorted(
        moments(replica, f"{identity(replica)} lost leadership")
        + moments(replica, "stopped handling Services and IPPools")
    )
    far = datetime.datetime.max
    return [(start, next((e for e in ended if e >= start), far)) for start in began]


def _overlaps(a: OperatorProcess, b: OperatorProcess) -> list[str]:
    return [
        f"{identity(a)} led {s1:%T.%f}..{e1:%T.%f} while {identity(b)} led {s2:%T.%f}..{e2:%T.%f}"
        for s1, e1 in _terms(a)
        for s2, e2 in _terms(b)
        if s1 < e2 and s2 < e1
    ]


def test_a_leader_whose_lease_is_stolen_stops_before_anyone_else_starts(
    case: Case,
    pools: Pools,
    namespace: str,
    replicas: Replicas,
    api: client.ApiClient,
) -> None:
    leader, follower = replicas.all
    pools.create([f"{subnet()}.0/24"])
    burst = case.burst(creates=250)
    burst.wait_created(80)

    before = case.snapshot()
    replicas.steal_lease(api)
    case.fault("Lease overwritten with holder 'intruder'")

    wait_for(lambda: not leading(leader), "the leader to stop leading", timeout=10)
    wait_for(lambda: leading(leader) or leading(follower), "a new leader", timeout=30)
    case.fault("leader stepped down; a replica took over after expiry")

    verdict = case.converge(before, context=lambda: leader.logs(25) + "\n" + follower.logs(25))
    assert verdict
    assert _terms(leader), "the leader's log names no term"
    assert _overlaps(leader, follower) == []


def test_a_replica_that_leads_again_keeps_only_its_current_term_in_memory(
    case: Case, pools: Pools, replicas: Replicas, api: client.ApiClient
) -> None:
    """Each term a replica had led stayed in memory whole (the soak's allocation traces showed
    three). A connection opened inside a handler keeps the handler's context, and through
    Kopf's memo the term's start-up gate, whose futures held the controllers."""
    leader, follower = replicas.all
    follower.stop()  # the leader alone, so each term after a theft is its own again
    pools.create([f"{subnet()}.0/24"])
    burst = case.burst(creates=200, delete_ratio=0.0, rate=200)
    burst.wait_created(200)
    assert case.converge()
    for theft in (1, 2):
        terms = len(_terms(leader))
        replicas.steal_lease(api)
        case.fault(f"Lease stolen ({theft} of 2); the replica leads again after expiry")
        # Its log, not its gauge: between Kopf stopping and the next term the gauge reads 0
        # for a few milliseconds only.
        wait_for(
            lambda terms=terms: len(_terms(leader)) > terms and leading(leader),
            "the replica to lead again",
            timeout=60,
        )
        assert case.converge()

    seen: list[int | None] = []

    def one_term() -> bool:
        # An ended term goes at the next collection: the sweep's first pass runs one.
        seen.append(tables_of(leader.metrics()).get("terms_in_memory"))
        return seen[-1] == 1

    try:
        wait_for(one_term, "only the current term to stay in memory", timeout=90)
    except AssertionError:
        raise AssertionError(f"terms in memory, last counted: {seen[-5:]}") from None


def test_a_leader_frozen_past_its_lease_does_not_act_when_it_wakes(
    case: Case,
    pools: Pools,
    namespace: str,
    replicas: Replicas,
) -> None:
    leader, follower = replicas.all
    assert leader.popen is not None
    pools.create([f"{subnet()}.0/24"])
    burst = case.burst(creates=250, rate=80)
    burst.wait_created(60)

    leader.popen.send_signal(signal.SIGSTOP)
    frozen_at = time.monotonic()
    case.fault("leader SIGSTOPped for 8s (lease 4s)")
    wait_for(lambda: leading(follower), "the follower to take over", timeout=20)
    time.sleep(max(0.0, 8 - (time.monotonic() - frozen_at)))
    # What the new leader decided while the old one slept is what must stay.
    made_while_frozen = burst.created_since(frozen_at)
    before = case.snapshot()
    offset = log_size(leader)
    leader.popen.send_signal(signal.SIGCONT)
    case.fault("SIGCONT")

    verdict = case.converge(before, context=lambda: leader.logs(25) + "\n" + follower.logs(25))
    # Writes logged after waking, about Services it could only have heard of after waking.
    acted = [
        line
        for line in log_text(leader, offset).splitlines()
        if any(f"{namespace}/{name}: " in line for name in made_while_frozen)
    ]
    assert made_while_frozen, "the burst made nothing while the leader was frozen"
    assert verdict, "addresses flapped or clashed after the frozen leader woke"
    assert acted == [], "the woken leader acted on Services its successor had handled"

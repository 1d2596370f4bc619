"""Lease election, one attempt at a time, against a Lease kept the way the API server keeps it."""

from __future__ import annotations

import asyncio
import copy
import itertools
import socket
import struct
import time
from types import SimpleNamespace
from typing import Any

import pytest

from lbipam.ha import leader
from lbipam.ha.deadlines import RequestDeadlines
from lbipam.ha.leader import Attempt, LeaderElector
from lbipam.ha.term import Term
from lbipam.kube.errors import ApiError
from lbipam.settings import Settings

SETTINGS = Settings.load({"LBIPAM_NAMESPACE": "lbipam-system", "LBIPAM_LEASE_DURATION": "15"})


class Leases:
    """One Lease with a resourceVersion that every write bumps: writes on a stale one fail."""

    def __init__(self) -> None:
        self.api = SimpleNamespace(deadlines=RequestDeadlines())
        self.lease: dict[str, Any] | None = None
        self._versions = itertools.count(1)

    def _stored(self, body: dict[str, Any]) -> None:
        metadata = {"name": body["metadata"]["name"], "resourceVersion": str(next(self._versions))}
        self.lease = {"metadata": metadata, "spec": dict(body["spec"])}

    async def read(self, name: str) -> dict[str, Any]:
        lease = self.lease
        await asyncio.sleep(0)  # let another candidate read the same version meanwhile
        if lease is None:
            raise ApiError(404)
        return copy.deepcopy(lease)  # the server hands out copies

    async def create(self, body: dict[str, Any]) -> None:
        if self.lease is not None:
            raise ApiError(409)
        self._stored(body)

    async def replace(self, name: str, body: dict[str, Any]) -> None:
        assert self.lease is not None
        if body["metadata"]["resourceVersion"] != self.lease["metadata"]["resourceVersion"]:
            raise ApiError(409)
        self._stored(body)


def elector(leases: Leases, identity: str) -> LeaderElector:
    return LeaderElector(leases, SETTINGS, identity)  # type: ignore[arg-type]


async def test_the_first_candidate_creates_the_lease_and_a_second_finds_it_taken() -> None:
    leases = Leases()
    a, b = elector(leases, "a"), elector(leases, "b")

    assert await a._try_once() is Attempt.HELD
    assert await b._try_once() is Attempt.TAKEN
    assert await a._try_once() is Attempt.HELD, "renewing keeps it"
    assert leases.lease is not None and leases.lease["spec"]["leaseTransitions"] == 0


async def test_a_lease_nobody_renewed_for_its_duration_is_taken_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    leases = Leases()
    a, b = elector(leases, "a"), elector(leases, "b")
    await a._try_once()
    clock = [1000.0]
    monkeypatch.setattr(leader.time, "monotonic", lambda: clock[0])
    assert await b._try_once() is Attempt.TAKEN  # b starts its own count now

    clock[0] += 16  # longer than leaseDurationSeconds, by b's own clock

    assert await b._try_once() is Attempt.HELD
    assert leases.lease is not None
    spec = leases.lease["spec"]
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("b", 1)


async def test_of_two_candidates_writing_on_one_version_only_one_wins() -> None:
    leases = Leases()
    await elector(leases, "old")._try_once()
    stale = leases.lease
    a, b = elector(leases, "a"), elector(leases, "b")
    a._observed = b._observed = (
        "old",
        str(stale["spec"]["renewTime"]),
        -1e9,
    )  # both see it expired

    results = await asyncio.gather(a._try(), b._try())

    assert sorted(r.value for r in results) == ["failed", "held"], "the loser's write got 409"
    winner = "a" if results[0] is Attempt.HELD else "b"
    assert leases.lease is not None and leases.lease["spec"]["holderIdentity"] == winner


async def test_a_renewal_stuck_in_a_hung_api_server_ends_the_term_when_its_window_closes() -> None:
    settings = Settings.load(
        {
            "LBIPAM_NAMESPACE": "lbipam-system",
            "LBIPAM_LEASE_DURATION": "2",
            "LBIPAM_RENEW_DEADLINE": "0.4",
            "LBIPAM_RETRY_PERIOD": "0.05",
        }
    )
    leases = Leases()
    candidate = LeaderElector(leases, settings, "a")  # type: ignore[arg-type]
    assert await candidate._try_once() is Attempt.HELD
    term = Term(settings.renew_deadline)
    term.renewed(time.monotonic())

    async def hung(name: str) -> dict[str, Any]:
        await asyncio.Event().wait()  # the API server never answers
        raise AssertionError("unreachable")

    leases.read = hung  # type: ignore[method-assign]
    started = time.monotonic()
    await asyncio.wait_for(candidate._keep(term), 5)

    assert not term.active()
    assert time.monotonic() - started < settings.renew_deadline + 0.3, "ended by the clock"


async def test_a_renewal_answered_after_the_window_closed_does_not_revive_the_term() -> None:
    term = Term(0.05)
    sent = time.monotonic()
    await asyncio.sleep(0.1)  # work fenced now is dropped for good

    term.renewed(sent + 0.04)

    assert not term.active() and term.remaining() == 0.0


def test_requests_fit_the_lease_writes_end_before_another_replica_may_take_over() -> None:
    deadlines = RequestDeadlines()
    deadlines.fit(lease_duration=15, renew_deadline=10)

    assert deadlines.timeout("PATCH").total == 5, "lease duration minus renew deadline"
    assert deadlines.timeout("GET").total == 15, "reads land nothing: a whole Lease"
    sock = deadlines.socket((socket.AF_INET, socket.SOCK_STREAM, 0, "", ("127.0.0.1", 0)))
    with sock:
        linger = struct.unpack("ii", sock.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8))
        assert linger == (1, 0), "closing resets: no given-up bytes go out later"
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 5000


async def test_time_the_api_server_did_not_answer_does_not_count_toward_expiry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    leases = Leases()
    a, b = elector(leases, "a"), elector(leases, "b")
    await a._try_once()
    clock = [1000.0]
    monkeypatch.setattr(leader.time, "monotonic", lambda: clock[0])
    assert await b._try() is Attempt.TAKEN
    answers = leases.read

    async def stalled(name: str) -> dict[str, Any]:
        raise TimeoutError("the API server is frozen")

    leases.read = stalled  # type: ignore[method-assign]
    clock[0] += 16  # the whole outage; the leader's writes wait in the stalled server
    assert await b._try() is Attempt.FAILED
    leases.read = answers  # type: ignore[method-assign]

    assert await b._try() is Attempt.TAKEN, "what the server kept may be landing right now"
    clock[0] += 16
    assert await b._try() is Attempt.HELD, "a full duration of answers without a renewal"

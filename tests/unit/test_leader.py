"""Lease election, one attempt at a time, against a Lease kept the way the API server keeps it."""

from __future__ import annotations

import asyncio
import copy
import itertools
from typing import Any

import pytest

from lbipam.ha import leader
from lbipam.ha.leader import Attempt, LeaderElector
from lbipam.kube.errors import ApiError
from lbipam.settings import Settings

SETTINGS = Settings.load({"LBIPAM_NAMESPACE": "lbipam-system", "LBIPAM_LEASE_DURATION": "15"})


class Leases:
    """One Lease with a resourceVersion that every write bumps: writes on a stale one fail."""

    def __init__(self) -> None:
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

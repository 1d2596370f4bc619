"""The judge of the hang cases: which writes of a replica, as the audit log saw them, trespass."""

from __future__ import annotations

import datetime

from tests.faults.hangs import RENEW_SECONDS, WRITE_SECONDS, Write, trespasses

T0 = datetime.datetime(2026, 1, 1, 12, 0, 0)


def _at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def renewal(user: str, at: float, code: int = 200) -> Write:
    return Write(user, "update", "leases ns/lbipam-leader", True, code, _at(at), _at(at))


def status(user: str, received: float, stored: float | None = None) -> Write:
    stored = received if stored is None else stored
    return Write(user, "patch", "services/status ns/a", False, 200, _at(received), _at(stored))


TERM = RENEW_SECONDS + WRITE_SECONDS  # a write checked at the deadline is given up by then


def test_writes_within_the_term_of_the_lease_holder_are_fine() -> None:
    writes = [renewal("a", 0), status("a", 1), renewal("a", 2), status("a", 2 + TERM)]

    assert trespasses(writes, T0) == ([], 0)


def test_a_write_stored_after_another_replica_took_over_trespasses() -> None:
    writes = [renewal("a", 0), status("a", 1), renewal("b", 10), status("a", 1, stored=10.5)]

    found, _ = trespasses(writes, T0)

    assert len(found) == 1 and found[0].startswith("(b)")


def test_a_write_reaching_the_api_server_after_the_term_trespasses() -> None:
    writes = [renewal("a", 0), status("a", TERM + 2)]

    found, _ = trespasses(writes, T0)

    assert len(found) == 1 and found[0].startswith("(a)")


def test_what_a_frozen_api_server_held_counts_as_sent_in_time_but_is_counted() -> None:
    thawed = _at(30)
    writes = [renewal("a", 0), status("a", 29.9, stored=30.0), renewal("a", 30.2)]

    assert trespasses(writes, T0, backlog_until=thawed) == ([], 1)
    assert trespasses(writes, T0)[0] != [], "without the thaw it would be a trespass"


def test_a_refused_write_lands_nothing() -> None:
    refused = Write("a", "create", "ipaddresses /10.0.0.1", False, 409, _at(20), _at(20))

    assert trespasses([renewal("a", 0), renewal("b", 10), refused], T0) == ([], 0)

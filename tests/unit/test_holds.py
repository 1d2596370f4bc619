"""Holds after release (an IPPool's releaseHold): the registry's side, time passed in."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lbipam.ipam.durations import parse_duration, parse_stamp, stamp
from lbipam.ipam.pool import PoolSpec
from lbipam.ipam.registry import RangeKind, Registry
from lbipam.ipam.requests import Reason, ServiceKey, ServiceRequest
from lbipam.ipam.reservations import Reservation

T0 = 1_800_000_000.0  # the moment the first Service lets go, in seconds since the epoch
WEB = ServiceKey("shop", "web")


def service(name: str, namespace: str = "shop", **fields: object) -> ServiceRequest:
    return ServiceRequest(ServiceKey(namespace, name), "2026-01-02T03:04:05Z", **fields)  # type: ignore[arg-type]


def stable(hold: float = 600.0, addresses: tuple[str, ...] = ("10.0.0.0-10.0.0.1",)) -> PoolSpec:
    return PoolSpec("stable", addresses, release_hold=hold, created="2026-01-01T00:00:00Z")


def holding_web(hold: float = 600.0) -> Registry:
    """A registry where shop/web held 10.0.0.0 and was deleted at T0."""
    reg = Registry()
    reg.apply_pool(stable(hold))
    assert reg.ensure(service("web")).addresses == ("10.0.0.0",)
    assert reg.release(WEB, T0) == ()  # held, not freed
    reg.check()
    return reg


def test_a_service_recreated_during_the_hold_gets_its_address_back_and_hears_since_when() -> None:
    reg = holding_web()
    other = reg.ensure(service("other"))
    assert other.addresses == ("10.0.0.1",)  # the held address is skipped

    back = reg.ensure(service("web"))

    assert back.addresses == ("10.0.0.0",)
    assert back.kept == {"10.0.0.0": T0}
    assert reg.hold_of("10.0.0.0") is None
    reg.check()


def test_nobody_else_gets_a_held_address_even_by_asking_and_hears_until_when() -> None:
    reg = holding_web()
    thief = reg.ensure(service("thief", namespace="other", requested_ips=("10.0.0.0",)))

    assert thief.reason is Reason.ADDRESS_HELD
    assert thief.message == (
        f"10.0.0.0 is held for Service shop/web after its release, until {stamp(T0 + 600)} "
        "(releaseHold)"
    )


def test_a_full_pool_counts_its_held_addresses_and_when_the_first_hold_ends() -> None:
    reg = holding_web()
    reg.ensure(service("other"))
    summary = reg.pool_summary("stable")
    assert (summary.allocated, summary.available, summary.held) == (2, 0, 1)
    assert summary.held_until == T0 + 600
    late = reg.ensure(service("late"))
    assert late.reason is Reason.POOL_EXHAUSTED
    assert late.message == (
        f'no free IPv4 address in pool "stable"; 1 held after release, the first until '
        f"{stamp(T0 + 600)}"
    )


def test_the_hold_ends_on_time_and_the_address_is_free_again() -> None:
    reg = holding_web()
    assert reg.end_holds(T0 + 599) == ()
    assert reg.end_holds(T0 + 600) == (WEB,)
    reg.check()
    assert reg.pool_summary("stable").held == 0
    assert reg.ensure(service("newcomer", requested_ips=("10.0.0.0",))).ok
    reg.check()


def test_shortening_release_hold_ends_holds_sooner() -> None:
    reg = holding_web(hold=3600)
    assert reg.end_holds(T0 + 120) == ()
    reg.apply_pool(stable(hold=60))
    reg.check()
    assert reg.end_holds(T0 + 120) == (WEB,)
    reg.check()


def test_without_release_hold_a_let_go_address_is_free_at_once() -> None:
    reg = Registry()
    reg.apply_pool(stable(hold=0))
    reg.ensure(service("web"))
    assert reg.release(WEB, T0) == ("10.0.0.0",)
    assert reg.hold_of("10.0.0.0") is None


def test_an_address_a_sharer_still_holds_is_not_held() -> None:
    reg = Registry()
    reg.apply_pool(stable())
    reg.ensure(service("web", sharing_key="k"))
    reg.ensure(service("api", sharing_key="k"))
    assert reg.release(WEB, T0) == ()
    assert reg.hold_of("10.0.0.0") is None
    assert reg.owners_of("10.0.0.0") == (ServiceKey("shop", "api"),)


def test_holds_come_back_from_the_claims_after_a_restart() -> None:
    reg = holding_web()
    reg.rebuild([])  # the restarted operator: no Service shows the address any more
    reg.restore_holds([("10.0.0.0", WEB, T0), ("not an address", WEB, T0)])
    reg.check()
    assert reg.hold_of("10.0.0.0") == (WEB, T0)
    assert reg.holds_after_release() == [("10.0.0.0", reg.describe_hold("10.0.0.0"))]
    assert reg.ensure(service("web")).kept == {"10.0.0.0": T0}


def test_a_hold_on_an_address_a_service_shows_is_dropped_at_restart() -> None:
    reg = Registry()
    reg.apply_pool(stable())
    reg.rebuild([service("web", held=("10.0.0.0",))])
    reg.restore_holds([("10.0.0.0", ServiceKey("shop", "gone"), T0)])
    reg.check()
    assert reg.hold_of("10.0.0.0") is None


def test_a_held_address_claimed_outside_lbipam_ends_the_hold() -> None:
    reg = holding_web()
    reg.block("10.0.0.0", "a ClusterIP")
    reg.check()
    assert reg.hold_of("10.0.0.0") is None
    assert reg.ensure(service("web")).addresses == ("10.0.0.1",)


def test_a_recreated_service_asking_for_another_address_leaves_its_hold_running() -> None:
    reg = holding_web()
    moved = reg.ensure(service("web", requested_ips=("10.0.0.1",)))
    assert moved.addresses == ("10.0.0.1",) and moved.kept == {}
    assert reg.hold_of("10.0.0.0") == (WEB, T0)
    reg.check()
    assert reg.ensure(replace(service("web"), held=moved.addresses)).addresses == ("10.0.0.1",)


def test_a_held_address_that_becomes_a_nodes_is_not_given_back_and_the_hold_ends() -> None:
    """Found by the chaos machine (seed 7304): web was re-created during its hold, after a
    Node had come up with the held address as its InternalIP, and got it back."""
    reg = holding_web()
    reg.reserve(RangeKind.NODE, {"n30": ["10.0.0.0"]})

    back = reg.ensure(service("web"))

    assert back.addresses == ("10.0.0.1",) and back.kept == {}
    assert reg.end_holds(T0) == (WEB,), "the hold timer ends it at its next look"
    assert reg.hold_of("10.0.0.0") is None
    reg.check()


def test_a_held_address_whose_pool_goes_is_no_longer_held() -> None:
    reg = holding_web()
    reg.remove_pool("stable")
    assert reg.end_holds(T0) == (WEB,)
    reg.check()


@pytest.mark.parametrize(
    ("text", "seconds"), [("0", 0), ("0s", 0), ("90s", 90), ("10m", 600), ("1h30m", 5400)]
)
def test_release_hold_is_hours_minutes_and_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text, "releaseHold") == seconds


@pytest.mark.parametrize("text", ["", "10", "1d", "5m1h", "-1s", "9000h"])
def test_other_release_holds_are_refused_naming_the_field(text: str) -> None:
    with pytest.raises(ValueError, match=r"^releaseHold: "):
        parse_duration(text, "releaseHold")


def test_a_hold_time_reads_back_to_the_second() -> None:
    assert parse_stamp(stamp(T0)) == T0
    assert parse_stamp("") is None and parse_stamp("2026-01-01T00:00:00") is None


def test_a_reservation_made_during_the_hold_does_not_take_the_address_from_its_service() -> None:
    reg = holding_web()
    reserved = (Reservation(("10.0.0.0",), "bank"),)
    reg.apply_pool(replace(stable(), reservations=reserved))

    back = reg.ensure(service("web"))

    assert back.addresses == ("10.0.0.0",)  # held before it was reserved, as a holder keeps it
    assert back.kept == {"10.0.0.0": T0}
    reg.check()


# ---- holds and perNamespaceLimit: a hold counts for the namespace it is held for -------------


def limited_holding_web(limit: int = 1) -> Registry:
    """shop/web held 10.0.0.0 of a pool of perNamespaceLimit `limit` and was deleted at T0."""
    reg = Registry()
    reg.apply_pool(replace(stable(addresses=("10.0.0.0-10.0.0.7",)), per_namespace_limit=limit))
    assert reg.ensure(service("web")).addresses == ("10.0.0.0",)
    assert reg.release(WEB, T0) == ()
    return reg


def test_a_hold_counts_toward_its_namespace_limit_and_the_refusal_names_it() -> None:
    reg = limited_holding_web()

    waiting = reg.ensure(service("api"))

    assert (waiting.addresses, waiting.reason) == ((), Reason.NAMESPACE_LIMIT_REACHED)
    assert waiting.message == (
        'namespace "shop" holds 1 addresses of pool "stable", its perNamespaceLimit is 1: '
        "10.0.0.0 (held for shop/web after release)"
    )
    assert reg.ensure(service("blog", namespace="blog")).addresses == ("10.0.0.1",)


def test_the_recreated_service_gets_its_held_address_back_within_the_limit() -> None:
    reg = limited_holding_web()
    assert not reg.ensure(service("api")).ok

    back = reg.ensure(service("web"))

    assert (back.addresses, back.kept) == (("10.0.0.0",), {"10.0.0.0": T0})
    reg.check()


def test_a_recreated_service_may_trade_its_held_address_for_another_within_the_limit() -> None:
    reg = limited_holding_web()

    moved = reg.ensure(service("web", requested_ips=("10.0.0.5",)))

    assert moved.addresses == ("10.0.0.5",)


def test_when_the_hold_ends_the_namespace_has_room_again() -> None:
    reg = limited_holding_web()
    assert not reg.ensure(service("api")).ok

    reg.end_holds(T0 + 600)

    assert reg.ensure(service("api")).addresses == ("10.0.0.0",)


def test_a_lowered_limit_reports_a_namespace_over_it_by_its_holds() -> None:
    reg = limited_holding_web(limit=2)
    assert reg.ensure(service("api")).addresses == ("10.0.0.1",)

    reg.apply_pool(replace(stable(addresses=("10.0.0.0-10.0.0.7",)), per_namespace_limit=1))

    assert reg.pool_summary("stable").over_limit == (("shop", 2),)

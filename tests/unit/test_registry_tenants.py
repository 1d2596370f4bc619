"""Pools shared by tenants: addresses reserved for a namespace or one Service, and a limit on
how many addresses one namespace may hold from a pool."""

from __future__ import annotations

from dataclasses import replace

from lbipam.ipam.registry import PoolState, Registry
from lbipam.ipam.requests import Reason, ServiceKey
from lbipam.ipam.reservations import Reservation
from tests.unit.test_registry import DNS, HTTP, again, pool, registry, service


def reserved_pool(*reservations: Reservation, **fields: object) -> Registry:
    return registry(pool("shared", "10.0.0.0/29", reservations=reservations, **fields))


# ---- reservations --------------------------------------------------------------------------


def test_the_service_a_reservation_names_gets_its_address_first() -> None:
    reg = reserved_pool(Reservation(("10.0.0.5",), "shop", "web"))
    web = reg.ensure(service("web", namespace="shop"))
    assert (web.addresses, web.reason) == (("10.0.0.5",), Reason.ALLOCATED)


def test_anyone_else_asking_for_a_reserved_address_is_refused_naming_the_reservation() -> None:
    reg = reserved_pool(Reservation(("10.0.0.5",), "shop", "web"))
    for other in (service("api", namespace="shop"), service("web", namespace="blog")):
        refused = reg.ensure(replace(other, requested_ips=("10.0.0.5",)))
        assert (refused.addresses, refused.reason) == ((), Reason.ADDRESS_RESERVED)
        assert refused.message == (
            '10.0.0.5 is reserved by pool "shared" reservations[0] for Service "shop/web"'
        )
    mine = reg.ensure(service("web", namespace="shop", requested_ips=("10.0.0.5",)))
    assert (mine.addresses, mine.reason) == (("10.0.0.5",), Reason.ALLOCATED)


def test_auto_assign_never_hands_a_reserved_address_to_anyone_else() -> None:
    reg = reserved_pool(Reservation(("10.0.0.0-10.0.0.3",), "shop"))
    handed = [reg.ensure(service(f"s{i}", i, namespace="blog")).addresses for i in range(5)]
    assert handed == [("10.0.0.4",), ("10.0.0.5",), ("10.0.0.6",), ("10.0.0.7",), ()]
    full = reg.ensure(service("late", 9, namespace="blog"))
    assert full.reason is Reason.POOL_EXHAUSTED
    assert full.message == (
        'no free IPv4 address in pool "shared" (4 free ones are reserved for other tenants)'
    )
    shop = [reg.ensure(service(f"t{i}", i, namespace="shop")).addresses for i in range(4)]
    assert shop == [("10.0.0.0",), ("10.0.0.1",), ("10.0.0.2",), ("10.0.0.3",)]


def test_a_namespace_reservation_serves_every_service_of_that_namespace_before_free_ones() -> None:
    reg = reserved_pool(Reservation(("10.0.0.6-10.0.0.7",), "shop"))
    got = [reg.ensure(service(f"s{i}", i, namespace="shop")).addresses for i in range(3)]
    assert got == [("10.0.0.6",), ("10.0.0.7",), ("10.0.0.0",)]


def test_pool_status_counts_free_reserved_addresses_apart_from_available_ones() -> None:
    reg = reserved_pool(Reservation(("10.0.0.4-10.0.0.7",), "shop"))
    reg.ensure(service("web", namespace="shop"))
    reg.ensure(service("blog", namespace="blog"))
    summary = reg.pool_summary("shared")
    assert (summary.total, summary.allocated, summary.reserved, summary.available) == (8, 2, 3, 3)
    reg.check()
    reg.release(ServiceKey("shop", "web"), 0.0)
    assert reg.pool_summary("shared").reserved == 4


def test_a_reservation_outside_the_pool_is_an_invalid_spec_naming_the_entry() -> None:
    reg = reserved_pool(Reservation(("10.0.0.7", "10.0.1.0/30"), "shop"))
    summary = reg.pool_summary("shared")
    assert summary.state is PoolState.INVALID_SPEC
    assert summary.error == (
        'reservations[0].addresses[1] "10.0.1.0/30": lies outside the pool\'s addresses'
    )


def test_two_reservations_of_one_address_are_an_invalid_spec() -> None:
    reg = reserved_pool(
        Reservation(("10.0.0.4/30",), "shop"), Reservation(("10.0.0.6",), "blog", "web")
    )
    assert reg.pool_summary("shared").error == (
        "reservations[1] overlaps reservations[0]; an address may be reserved for one tenant only"
    )


def test_a_holder_keeps_an_address_reserved_after_it_got_it() -> None:
    reg = reserved_pool()
    blog = service("web", namespace="blog", requested_ips=("10.0.0.5",))
    first = reg.ensure(blog)
    reg.apply_pool(
        pool("shared", "10.0.0.0/29", reservations=(Reservation(("10.0.0.5",), "shop"),))
    )
    assert again(reg, blog, first).addresses == ("10.0.0.5",)
    taken = reg.ensure(service("web", namespace="shop", requested_ips=("10.0.0.5",)))
    assert taken.reason is Reason.ADDRESS_IN_USE
    reg.check()


def test_a_sharing_group_may_not_reach_a_reserved_address_through_its_oldest_member() -> None:
    reg = reserved_pool(Reservation(("10.0.0.0",), "shop", "web"))
    web = reg.ensure(service("web", namespace="shop", sharing_key="k", ports=frozenset({HTTP})))
    assert web.addresses == ("10.0.0.0",)
    dns = reg.ensure(service("dns", 1, namespace="shop", sharing_key="k", ports=frozenset({DNS})))
    assert (dns.reason, dns.addresses) == (Reason.ADDRESS_RESERVED, ())


# ---- perNamespaceLimit -----------------------------------------------------------------------


def test_a_namespace_at_its_limit_waits_naming_the_limit_and_the_holders() -> None:
    reg = registry(pool("shared", "10.0.0.0/29", per_namespace_limit=2))
    for i in range(2):
        assert reg.ensure(service(f"s{i}", i, namespace="shop")).ok
    waiting = reg.ensure(service("s2", 2, namespace="shop"))
    assert (waiting.addresses, waiting.reason) == ((), Reason.NAMESPACE_LIMIT_REACHED)
    assert waiting.message == (
        'namespace "shop" holds 2 addresses of pool "shared", its perNamespaceLimit is 2: '
        "10.0.0.0 (shop/s0), 10.0.0.1 (shop/s1)"
    )
    assert reg.ensure(service("other", 3, namespace="blog")).addresses == ("10.0.0.2",)


def test_freeing_one_address_lets_the_next_service_in() -> None:
    reg = registry(pool("shared", "10.0.0.0/29", per_namespace_limit=1))
    assert reg.ensure(service("s0", namespace="shop")).ok
    assert not reg.ensure(service("s1", 1, namespace="shop")).ok
    reg.release(ServiceKey("shop", "s0"), 0.0)
    assert reg.ensure(service("s1", 1, namespace="shop")).addresses == ("10.0.0.0",)


def test_a_shared_address_counts_once() -> None:
    reg = registry(pool("shared", "10.0.0.0/29", per_namespace_limit=1))
    web = reg.ensure(service("web", namespace="shop", sharing_key="k", ports=frozenset({HTTP})))
    dns = reg.ensure(service("dns", 1, namespace="shop", sharing_key="k", ports=frozenset({DNS})))
    assert dns.addresses == web.addresses == ("10.0.0.0",)
    assert reg.ensure(service("api", 2, namespace="shop")).reason is (
        Reason.NAMESPACE_LIMIT_REACHED
    )


def test_a_static_request_beyond_the_limit_waits_but_moving_within_it_does_not() -> None:
    reg = registry(pool("shared", "10.0.0.0/29", per_namespace_limit=1))
    web = service("web", namespace="shop", requested_ips=("10.0.0.3",))
    first = reg.ensure(web)
    api = reg.ensure(service("api", 1, namespace="shop", requested_ips=("10.0.0.4",)))
    assert api.reason is Reason.NAMESPACE_LIMIT_REACHED
    moved = again(reg, replace(web, requested_ips=("10.0.0.6",)), first)
    assert (moved.addresses, moved.released) == (("10.0.0.6",), ("10.0.0.3",))


def test_a_dual_stack_service_counts_both_its_addresses() -> None:
    reg = registry(pool("shared", "10.0.0.0/29", "fd00::/125", per_namespace_limit=1))
    both = service("web", namespace="shop", families=(4, 6), family_policy="RequireDualStack")
    refused = reg.ensure(both)
    assert (refused.reason, refused.addresses) == (Reason.NAMESPACE_LIMIT_REACHED, ())
    assert refused.message.endswith(": 10.0.0.0 (this Service's other family)")


def test_a_prefer_dual_stack_service_takes_its_first_family_when_the_second_is_limited() -> None:
    reg = registry(pool("v4", "10.0.0.0/29"), pool("v6", "fd00::/125", per_namespace_limit=1))
    reg.ensure(service("web", namespace="shop", families=(6,)))
    both = service("api", 1, namespace="shop", families=(4, 6), family_policy="PreferDualStack")
    outcome = reg.ensure(both)
    assert (outcome.addresses, outcome.reason, outcome.partial) == (
        ("10.0.0.0",),
        Reason.ALLOCATED,
        True,
    )
    assert "perNamespaceLimit is 1" in outcome.message


def test_the_limit_skips_to_the_next_pool_the_service_may_use() -> None:
    reg = registry(
        pool("first", "10.0.0.0/30", priority=1, per_namespace_limit=1),
        pool("second", "10.0.1.0/30"),
    )
    got = [reg.ensure(service(f"s{i}", i, namespace="shop")).addresses for i in range(2)]
    assert got == [("10.0.0.0",), ("10.0.1.0",)]


def test_lowering_the_limit_takes_nothing_away_and_is_reported() -> None:
    reg = registry(pool("shared", "10.0.0.0/29", per_namespace_limit=3))
    shop = [service(f"s{i}", i, namespace="shop") for i in range(3)]
    outcomes = [reg.ensure(s) for s in shop]
    reg.apply_pool(pool("shared", "10.0.0.0/29", per_namespace_limit=1))
    assert [again(reg, s, o).addresses for s, o in zip(shop, outcomes, strict=True)] == [
        ("10.0.0.0",),
        ("10.0.0.1",),
        ("10.0.0.2",),
    ]
    assert reg.pool_summary("shared").over_limit == (("shop", 3),)
    assert reg.ensure(service("s3", 3, namespace="shop")).reason is (Reason.NAMESPACE_LIMIT_REACHED)


def test_a_reserved_address_still_counts_against_the_limit() -> None:
    reg = registry(
        pool(
            "shared",
            "10.0.0.0/29",
            per_namespace_limit=1,
            reservations=(Reservation(("10.0.0.6-10.0.0.7",), "shop"),),
        )
    )
    assert reg.ensure(service("s0", namespace="shop")).addresses == ("10.0.0.6",)
    assert reg.ensure(service("s1", 1, namespace="shop")).reason is (Reason.NAMESPACE_LIMIT_REACHED)
    reg.check()

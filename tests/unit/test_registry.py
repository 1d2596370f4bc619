"""The registry as Services and IPPools see it: who gets which address, and why not."""

from __future__ import annotations

import ipaddress
import random
from dataclasses import replace
from typing import Any

import pytest

from lbipam.ipam.pool import PoolSpec
from lbipam.ipam.registry import PoolChange, PoolState, Registry
from lbipam.ipam.requests import Outcome, Port, Reason, ServiceKey, ServiceRequest
from lbipam.ipam.selectors import Selector

HTTP, HTTPS, DNS = Port(80, "TCP"), Port(443, "TCP"), Port(53, "UDP")


def at(second: int) -> str:
    return f"2026-01-02T03:04:{second:02d}Z"


def service(
    name: str, created: int = 0, namespace: str = "default", **fields: Any
) -> ServiceRequest:
    return ServiceRequest(ServiceKey(namespace, name), at(created), **fields)


def pool(name: str, *addresses: str, created: int = 0, **fields: Any) -> PoolSpec:
    # These stories count every address of a CIDR; the default that skips IPv4 network and
    # broadcast addresses has stories of its own below.
    fields.setdefault("allow_first_last_ips", True)
    return PoolSpec(name, addresses, created=at(created), **fields)


def registry(*pools: PoolSpec) -> Registry:
    reg = Registry()
    for spec in pools:
        reg.apply_pool(spec)
    return reg


def again(reg: Registry, request: ServiceRequest, outcome: Outcome) -> Outcome:
    """The operator's next pass: the status now lists what the last outcome said."""
    return reg.ensure(replace(request, held=outcome.addresses))


def allocated(reg: Registry, name: str) -> int:
    return reg.pool_summary(name).allocated


# ---- the basics --------------------------------------------------------------------------


def test_a_service_gets_the_lowest_free_address_and_keeps_it() -> None:
    reg = registry(pool("public", "192.168.10.0/24", exclude=("192.168.10.0",)))
    web = service("web")
    first = reg.ensure(web)
    assert first == Outcome(
        addresses=("192.168.10.1",),
        pools=("public",),
        reason=Reason.ALLOCATED,
        message='192.168.10.1 from pool "public"',
        allocated=("192.168.10.1",),
    )
    assert first.ok
    second = again(reg, web, first)
    assert (second.addresses, second.allocated, second.released) == (first.addresses, (), ())
    assert reg.held_by(web.key) == ("192.168.10.1",)
    assert reg.holders("public") == (web.key,)
    assert allocated(reg, "public") == 1


def test_a_fixed_load_balancer_ip_is_honoured() -> None:
    reg = registry(pool("public", "192.168.10.0/24"))
    outcome = reg.ensure(service("web", load_balancer_ip="192.168.10.7"))
    assert (outcome.addresses, outcome.reason) == (("192.168.10.7",), Reason.ALLOCATED)
    also = reg.ensure(service("api", requested_ips=("192.168.10.8",)))
    assert also.addresses == ("192.168.10.8",)


def test_a_pool_of_one_address_leaves_the_second_service_pending_until_the_first_goes() -> None:
    reg = registry(pool("tiny", "10.0.0.1"))
    assert reg.ensure(service("first")).addresses == ("10.0.0.1",)
    pending = reg.ensure(service("second", created=1))
    assert (pending.addresses, pending.reason) == ((), Reason.POOL_EXHAUSTED)
    assert pending.message == 'no free IPv4 address in pool "tiny"'
    assert reg.pool_summary("tiny").exhausted
    assert reg.release(ServiceKey("default", "first"), 0.0) == ("10.0.0.1",)
    assert reg.ensure(service("second", created=1)).addresses == ("10.0.0.1",)


def test_a_requested_address_outside_every_pool_is_refused() -> None:
    reg = registry(pool("public", "192.168.10.0/24"))
    outcome = reg.ensure(service("web", load_balancer_ip="10.9.9.9"))
    assert (outcome.reason, outcome.message) == (
        Reason.ADDRESS_NOT_IN_POOL,
        "10.9.9.9 is not inside any IPPool",
    )
    assert outcome.addresses == () and allocated(reg, "public") == 0


def test_a_requested_address_another_service_holds_names_that_service() -> None:
    reg = registry(pool("public", "192.168.10.0/24"))
    reg.ensure(service("old", load_balancer_ip="192.168.10.7"))
    clash = reg.ensure(service("new", created=1, load_balancer_ip="192.168.10.7"))
    assert (clash.reason, clash.message) == (
        Reason.ADDRESS_IN_USE,
        "192.168.10.7 is already used by Service default/old",
    )
    older = reg.ensure(service("older", created=0, namespace="a", load_balancer_ip="192.168.10.7"))
    assert older.reason is Reason.ADDRESS_IN_USE, "a static request never steals a held address"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"load_balancer_ip": "10.0.0.300"}, 'spec.loadBalancerIP: "10.0.0.300" is not an IPv4'),
        ({"requested_ips": ("10.0.0.1", "10.0.0.2")}, "lbipam.io/ips lists two IPv4 addresses"),
        (
            {"load_balancer_ip": "10.0.0.1", "requested_ips": ("10.0.0.2",)},
            "spec.loadBalancerIP 10.0.0.1 and lbipam.io/ips 10.0.0.2 disagree",
        ),
        (
            {"requested_ips": ("2001:db8::1",)},
            "2001:db8::1 is IPv6 but the Service is single-stack",
        ),
        ({"family_policy": "Sometimes"}, 'ipFamilyPolicy "Sometimes" is not one of'),
        ({"families": (4, 4)}, "ipFamilies [4, 4] must list IPv4 and/or IPv6 once each"),
    ],
)
def test_a_request_that_makes_no_sense_is_invalid(fields: dict[str, Any], message: str) -> None:
    reg = registry(pool("public", "10.0.0.0/24", "2001:db8::/120"))
    outcome = reg.ensure(service("web", **fields))
    assert outcome.reason is Reason.INVALID_REQUEST
    assert outcome.message.startswith(message)


def test_load_balancer_ip_and_the_annotation_may_agree() -> None:
    reg = registry(pool("public", "10.0.0.0/24"))
    outcome = reg.ensure(
        service("web", load_balancer_ip="10.0.0.9", requested_ips=("10.0.0.9", ""))
    )
    assert outcome.addresses == ("10.0.0.9",)


def test_an_invalid_edit_keeps_the_address_the_service_already_has() -> None:
    reg = registry(pool("public", "10.0.0.0/24"))
    first = reg.ensure(service("web"))
    typo = reg.ensure(service("web", load_balancer_ip="10.0.0.x", held=first.addresses))
    assert (typo.reason, typo.addresses) == (Reason.INVALID_REQUEST, ("10.0.0.0",))
    assert typo.message.endswith('; keeping 10.0.0.0 from pool "public"')


# ---- choosing a pool ---------------------------------------------------------------------


def test_higher_priority_pools_are_tried_first_and_ties_go_by_name() -> None:
    reg = registry(
        pool("b-low", "10.0.2.0/31"),
        pool("a-low", "10.0.1.0"),
        pool("high", "10.0.0.0", priority=10),
    )
    got = [reg.ensure(service(f"s{i}", created=i)).pools for i in range(5)]
    assert got == [("high",), ("a-low",), ("b-low",), ("b-low",), ()]


def test_selectors_decide_which_auto_assign_pools_a_service_may_use() -> None:
    reg = registry(
        pool(
            "web-only",
            "10.0.0.1",
            service_selector=Selector.from_dict({"matchLabels": {"app": "web"}}),
        ),
        pool(
            "team-a",
            "10.0.0.2",
            namespace_selector=Selector.from_dict({"matchLabels": {"team": "a"}}),
        ),
        pool("manual", "10.0.0.3", auto_assign=False),
    )
    assert reg.ensure(service("web", labels={"app": "web"})).pools == ("web-only",)
    assert reg.ensure(service("api", namespace_labels={"team": "a"})).pools == ("team-a",)
    stray = reg.ensure(service("stray"))
    assert stray.reason is Reason.NO_MATCHING_POOL
    assert stray.message == "no autoAssign pools matching this Service can hand out an IPv4 address"
    assert reg.ensure(service("named", pools=("manual",))).addresses == ("10.0.0.3",)


def test_an_auto_assign_false_pool_serves_a_static_request() -> None:
    reg = registry(pool("manual", "10.0.0.0/29", auto_assign=False))
    assert reg.ensure(service("dynamic")).reason is Reason.NO_MATCHING_POOL
    assert reg.ensure(service("static", load_balancer_ip="10.0.0.5")).pools == ("manual",)


def test_naming_a_pool_that_does_not_exist_is_no_matching_pool() -> None:
    reg = registry(pool("public", "10.0.0.0/29"))
    outcome = reg.ensure(service("web", pools=("public", "pubilc")))
    assert (outcome.reason, outcome.message) == (
        Reason.NO_MATCHING_POOL,
        'pool "pubilc" named in lbipam.io/pool does not exist',
    )


def test_a_disabled_pool_hands_out_nothing_new_but_holders_stay() -> None:
    reg = registry(pool("public", "10.0.0.0/29"))
    web = service("web", pools=("public",))
    first = reg.ensure(web)
    reg.apply_pool(pool("public", "10.0.0.0/29", disabled=True))
    assert again(reg, web, first).addresses == first.addresses
    refused = reg.ensure(service("api", pools=("public",)))
    assert (refused.reason, refused.message) == (
        Reason.NO_MATCHING_POOL,
        "no lbipam.io/pool can hand out an IPv4 address "
        '(pool "public" is disabled or being deleted)',
    )
    static = reg.ensure(service("static", load_balancer_ip="10.0.0.5"))
    assert static.message == (
        '10.0.0.5 cannot be handed out: pool "public" is disabled or being deleted'
    )
    status = reg.pool_summary("public")
    assert (status.state, status.allocated) == (PoolState.DISABLED, 1)


def test_a_held_address_stays_when_selectors_stop_matching() -> None:
    selector = Selector.from_dict({"matchLabels": {"app": "web"}})
    reg = registry(pool("web-only", "10.0.0.0/29", service_selector=selector))
    web = service("web", labels={"app": "web"})
    first = reg.ensure(web)
    relabelled = replace(web, labels={"app": "other"}, held=first.addresses)
    assert reg.ensure(relabelled).addresses == first.addresses


def test_naming_another_pool_moves_the_service_there() -> None:
    reg = registry(pool("a", "10.0.0.0/30"), pool("b", "10.0.1.0/30"))
    web = service("web")
    first = reg.ensure(web)
    moved = reg.ensure(replace(web, pools=("b",), held=first.addresses))
    assert (moved.addresses, moved.allocated, moved.released) == (
        ("10.0.1.0",),
        ("10.0.1.0",),
        ("10.0.0.0",),
    )
    assert allocated(reg, "a") == 0


def test_avoid_buggy_ips_never_hands_out_dot_zero_or_dot_255() -> None:
    reg = registry(pool("edge", "10.0.0.255-10.0.1.1", avoid_buggy_ips=True))
    got = [reg.ensure(service(f"s{i}", created=i)).addresses for i in range(2)]
    assert got == [("10.0.1.1",), ()]
    assert reg.pool_summary("edge").total == 1


# ---- sharing -----------------------------------------------------------------------------


def test_services_with_one_sharing_key_and_distinct_ports_share_an_address() -> None:
    reg = registry(pool("public", "10.0.0.0/29"))
    web = reg.ensure(service("web", sharing_key="k", ports=frozenset({HTTP})))
    dns = reg.ensure(service("dns", created=1, sharing_key="k", ports=frozenset({DNS})))
    other_ns = reg.ensure(
        service("dns", created=1, namespace="other", sharing_key="k", ports=frozenset({DNS}))
    )
    assert web.addresses == dns.addresses == ("10.0.0.0",)
    assert other_ns.addresses == ("10.0.0.1",), "sharing stays inside one namespace"
    assert allocated(reg, "public") == 2
    assert reg.holders("public") == tuple(
        sorted(
            [ServiceKey("default", "web"), ServiceKey("default", "dns"), ServiceKey("other", "dns")]
        )
    )
    assert reg.release(ServiceKey("default", "web"), 0.0) == ()
    assert reg.release(ServiceKey("default", "dns"), 0.0) == ("10.0.0.0",)


def test_sharers_whose_ports_overlap_get_port_conflict() -> None:
    reg = registry(pool("public", "10.0.0.0/29"))
    reg.ensure(service("web", sharing_key="k", ports=frozenset({HTTP, HTTPS})))
    clash = reg.ensure(service("web2", created=1, sharing_key="k", ports=frozenset({HTTPS})))
    assert (clash.reason, clash.message) == (
        Reason.PORT_CONFLICT,
        '10.0.0.0 is shared under sharing key "k" with Service default/web, '
        "which also uses port 443/TCP",
    )
    static = reg.ensure(service("lonely", created=2, load_balancer_ip="10.0.0.0"))
    assert static.reason is Reason.ADDRESS_IN_USE


def test_sharers_may_also_ask_for_the_address_explicitly() -> None:
    reg = registry(pool("public", "10.0.0.0/29"))
    reg.ensure(service("web", sharing_key="k", ports=frozenset({HTTP})))
    joined = reg.ensure(
        service(
            "dns", created=1, sharing_key="k", ports=frozenset({DNS}), load_balancer_ip="10.0.0.0"
        )
    )
    assert joined.addresses == ("10.0.0.0",)


def test_a_younger_sharer_moves_to_the_group_address() -> None:
    reg = registry(pool("public", "10.0.0.0/29"))
    web = reg.ensure(service("web", sharing_key="k", ports=frozenset({HTTP})))
    dns = service("dns", created=1, ports=frozenset({DNS}))
    alone = reg.ensure(dns)
    joined = reg.ensure(replace(dns, sharing_key="k", held=alone.addresses))
    assert alone.addresses == ("10.0.0.1",)
    assert (joined.addresses, joined.released) == (web.addresses, ("10.0.0.1",))


# ---- families ----------------------------------------------------------------------------


DUAL = (pool("v4", "10.0.0.0/30"), pool("v6", "2001:db8::/126"))


def test_single_stack_takes_the_first_family_only() -> None:
    reg = registry(*DUAL)
    outcome = reg.ensure(service("web", families=(6, 4)))
    assert (outcome.addresses, outcome.pools) == (("2001:db8::",), ("v6",))


def test_require_dual_stack_gets_one_address_per_family_in_service_order() -> None:
    reg = registry(pool("both", "10.0.0.0/30", "2001:db8::/126"))
    outcome = reg.ensure(service("web", families=(6, 4), family_policy="RequireDualStack"))
    assert (outcome.addresses, outcome.pools) == (("2001:db8::", "10.0.0.0"), ("both", "both"))
    assert [c.allocated for c in reg.pool_summary("both").counts] == [1, 1]


def test_require_dual_stack_without_ipv6_gets_nothing() -> None:
    reg = registry(pool("v4", "10.0.0.0/30"))
    outcome = reg.ensure(service("web", family_policy="RequireDualStack"))
    assert (outcome.addresses, outcome.reason) == ((), Reason.NO_MATCHING_POOL)
    assert outcome.message.startswith("IPv6: no autoAssign pools")
    assert allocated(reg, "v4") == 0


def test_require_dual_stack_keeps_its_ipv4_when_ipv6_runs_dry() -> None:
    reg = registry(pool("v4", "10.0.0.0/30"), pool("v6", "2001:db8::1"))
    reg.ensure(service("hog", families=(6,)))
    web = service("web", created=1)
    single = reg.ensure(web)
    upgraded = reg.ensure(replace(web, family_policy="RequireDualStack", held=single.addresses))
    assert (upgraded.reason, upgraded.addresses) == (Reason.POOL_EXHAUSTED, ("10.0.0.0",))
    assert upgraded.message == (
        'IPv6: no free IPv6 address in pool "v6"; keeping 10.0.0.0 from pool "v4"'
    )
    assert (upgraded.allocated, upgraded.released) == ((), ())


def test_prefer_dual_stack_takes_both_when_it_can_and_what_it_can_otherwise() -> None:
    reg = registry(pool("v4", "10.0.0.0/30"), pool("v6", "2001:db8::1"))
    both = reg.ensure(service("a", family_policy="PreferDualStack"))
    assert both.addresses == ("10.0.0.0", "2001:db8::1")
    partial = reg.ensure(service("b", created=1, family_policy="PreferDualStack"))
    assert (partial.ok, partial.addresses) == (True, ("10.0.0.1",))
    assert partial.message == '10.0.0.1 from pool "v4"; IPv6: no free IPv6 address in pool "v6"'
    v6_first = reg.ensure(service("c", created=2, families=(6, 4), family_policy="PreferDualStack"))
    assert (v6_first.reason, v6_first.addresses) == (Reason.POOL_EXHAUSTED, ())


def test_dropping_a_family_releases_its_address() -> None:
    reg = registry(pool("both", "10.0.0.0/30", "2001:db8::/126"))
    web = service("web", family_policy="RequireDualStack")
    dual = reg.ensure(web)
    single = reg.ensure(replace(web, family_policy="SingleStack", held=dual.addresses))
    assert (single.addresses, single.released) == (("10.0.0.0",), ("2001:db8::",))


# ---- keeping, displacing, revoking -------------------------------------------------------


def test_the_older_service_wins_an_address_both_claim() -> None:
    reg = registry(pool("public", "10.0.0.0/29"))
    younger = reg.ensure(service("young", created=5))
    older = reg.ensure(service("old", created=1, held=younger.addresses))
    assert (older.addresses, older.allocated, older.displaced) == (
        ("10.0.0.0",),
        (),
        (ServiceKey("default", "young"),),
    )
    rerun = reg.ensure(service("young", created=5, held=younger.addresses))
    assert (rerun.addresses, rerun.released) == (("10.0.0.1",), ("10.0.0.0",))


def test_a_held_address_outside_every_pool_is_replaced() -> None:
    reg = registry(pool("public", "10.0.0.0/29"))
    outcome = reg.ensure(service("web", held=("192.0.2.1", "not-an-ip")))
    assert (outcome.addresses, outcome.allocated, outcome.released) == (
        ("10.0.0.0",),
        ("10.0.0.0",),
        ("192.0.2.1",),
    )


def test_a_status_address_is_adopted_after_a_restart() -> None:
    reg = registry(pool("public", "10.0.0.0/29"))
    outcome = reg.ensure(service("web", held=("10.0.0.5",)))
    assert (outcome.addresses, outcome.allocated) == (("10.0.0.5",), ())
    assert allocated(reg, "public") == 1


def test_growing_a_pool_moves_nobody_and_shrinking_revokes_exactly_the_outsiders() -> None:
    reg = registry(pool("public", "10.0.0.0/30"), pool("spare", "10.0.0.8/30", created=1))
    for i in range(4):
        reg.ensure(service(f"s{i}", created=i, pools=("public",)))
    grown = reg.apply_pool(pool("public", "10.0.0.0/29"))
    assert grown.revoked == ()
    shrunk = reg.apply_pool(pool("public", "10.0.0.0/31"))
    assert shrunk.revoked == (ServiceKey("default", "s2"), ServiceKey("default", "s3"))
    assert reg.held_by(ServiceKey("default", "s2")) == ()
    assert reg.pool_summary("public").allocated == 2
    renewed = reg.ensure(service("s2", created=2, held=("10.0.0.2",)))
    assert (renewed.addresses, renewed.pools, renewed.released) == (
        ("10.0.0.8",),
        ("spare",),
        ("10.0.0.2",),
    )


def test_an_address_leaving_the_named_pool_is_revoked_even_if_another_pool_covers_it() -> None:
    """Chaos seed 4545: .8 left p5, which the Service names, but p20 still covers it."""
    reg = registry(pool("p5", "10.0.0.8/30", "10.0.0.12/31"), pool("p20", "10.0.0.8/30", created=1))
    dns = service("dns", pools=("p5",))
    first = reg.ensure(dns)
    assert first.addresses == ("10.0.0.8",)
    shrunk = reg.apply_pool(pool("p5", "10.0.0.12/31"))
    assert (shrunk.revoked, shrunk.moving) == ((), (dns.key,)), "still its until it moves"
    assert reg.held_by(dns.key) == ("10.0.0.8",)
    moved = again(reg, dns, first)
    assert (moved.addresses, moved.released) == (("10.0.0.12",), ("10.0.0.8",))
    assert moved.revoked == {
        "10.0.0.8": '10.0.0.8 is no longer in pool "p5", which lbipam.io/pool names'
    }


def test_a_sharing_service_follows_its_group_and_hears_why() -> None:
    reg = registry(pool("p5", "10.0.0.8/30", "10.0.0.12/31"), pool("p20", "10.0.0.8/30", created=1))
    web = service("web", created=0, pools=("p5",), sharing_key="edge", ports=frozenset({HTTP}))
    dns = service("dns", created=1, sharing_key="edge", ports=frozenset({DNS}))
    first_web, first_dns = reg.ensure(web), reg.ensure(dns)
    assert first_web.addresses == first_dns.addresses == ("10.0.0.8",)
    reg.apply_pool(pool("p5", "10.0.0.12/31"))
    moved_web = again(reg, web, first_web)
    assert (moved_web.followers, moved_web.revoked) == (
        (dns.key,),
        {"10.0.0.8": '10.0.0.8 is no longer in pool "p5", which lbipam.io/pool names'},
    )
    followed = again(reg, dns, first_dns)
    assert (followed.addresses, followed.followers, followed.revoked) == (
        ("10.0.0.12",),
        (),
        {"10.0.0.8": '10.0.0.8: the Services sharing key "edge" moved to 10.0.0.12'},
    )


def test_an_older_service_joining_a_group_brings_the_group_to_its_address() -> None:
    reg = registry(pool("public", "10.0.0.8/30"))
    old = service("old", created=0, ports=frozenset({HTTP}))
    dns = service("dns", created=1, sharing_key="edge", ports=frozenset({DNS}))
    first_old, first_dns = reg.ensure(old), reg.ensure(dns)
    assert (first_old.addresses, first_dns.addresses) == (("10.0.0.8",), ("10.0.0.9",))

    joined = again(reg, replace(old, sharing_key="edge"), first_old)
    assert (joined.addresses, joined.followers) == (("10.0.0.8",), (dns.key,))
    followed = again(reg, dns, first_dns)
    assert followed.addresses == ("10.0.0.8",) and "10.0.0.9" in followed.revoked


def test_a_younger_service_leaving_its_group_is_released_not_revoked() -> None:
    reg = registry(pool("public", "10.0.0.8/30"))
    web = service("web", created=0, sharing_key="edge", ports=frozenset({HTTP}))
    dns = service("dns", created=1, sharing_key="edge", ports=frozenset({DNS}))
    reg.ensure(web)
    first = reg.ensure(dns)
    assert first.addresses == ("10.0.0.8",)

    left = again(reg, replace(dns, sharing_key=""), first)
    assert (left.addresses, left.released, left.revoked) == (("10.0.0.9",), ("10.0.0.8",), {})


def test_a_pool_named_before_it_exists_by_a_service_left_bare_is_asked_for() -> None:
    """A decision left it no address (its pool full); that write failed, and then it named
    a pool that does not exist: the address its status still shows keeps its old terms."""
    reg = registry(pool("p5", "10.0.0.8/30"), pool("p6", "10.0.0.16/32"))
    reg.ensure(service("web", pools=("p6",)))
    first = reg.ensure(service("dns", created=1, pools=("p5",)))
    assert again(reg, service("dns", created=1, pools=("p6",)), first).addresses == ()
    early = service("dns", created=1, pools=("p9",))
    waiting = again(reg, early, first)  # keeps 10.0.0.8 while p9 does not exist
    assert waiting.addresses == ("10.0.0.8",)

    reg.apply_pool(pool("p9", "10.0.0.20/30"))
    moved = again(reg, early, waiting)
    assert (moved.addresses, moved.released, moved.revoked) == (
        ("10.0.0.20",),
        ("10.0.0.8",),
        {},
    )


def test_a_follower_with_a_static_address_of_the_other_family_still_hears_why() -> None:
    v6 = "2001:db8::/126"
    reg = registry(
        pool("p5", "10.0.0.8/30", "10.0.0.12/31", v6), pool("p20", "10.0.0.8/30", created=1)
    )
    web = service("web", created=0, pools=("p5",), sharing_key="edge", ports=frozenset({HTTP}))
    dns = service(
        "dns",
        created=1,
        sharing_key="edge",
        ports=frozenset({DNS}),
        families=(4, 6),
        family_policy="RequireDualStack",
        requested_ips=("2001:db8::3",),
    )
    first_web, first_dns = reg.ensure(web), reg.ensure(dns)
    assert first_dns.addresses == ("10.0.0.8", "2001:db8::3")
    reg.apply_pool(pool("p5", "10.0.0.12/31", v6))
    again(reg, web, first_web)
    followed = again(reg, dns, first_dns)
    assert followed.addresses == ("10.0.0.12", "2001:db8::3")
    assert followed.revoked == {
        "10.0.0.8": '10.0.0.8: the Services sharing key "edge" moved to 10.0.0.12'
    }


def test_a_service_that_names_another_pool_has_its_address_released_not_revoked() -> None:
    reg = registry(pool("p5", "10.0.0.8/30"), pool("p6", "10.0.0.16/30"))
    first = reg.ensure(service("dns", pools=("p5",)))
    renamed = again(reg, service("dns", pools=("p6",)), first)
    assert (renamed.addresses, renamed.released, renamed.revoked) == (
        ("10.0.0.16",),
        ("10.0.0.8",),
        {},
    )


def test_a_pool_change_asked_for_stays_asked_for_when_its_status_write_failed() -> None:
    """The registry keeps a decision whose write was refused (409): the next pass releases the
    address the status still shows, under the annotation the user changed, not as revoked."""
    reg = registry(pool("p5", "10.0.0.8/30"), pool("p6", "10.0.0.16/30"))
    first = reg.ensure(service("dns", pools=("p5",)))
    renamed = service("dns", pools=("p6",))
    again(reg, renamed, first)  # decided 10.0.0.16; the status write fails

    retried = again(reg, renamed, first)
    assert (retried.addresses, retried.released, retried.revoked) == (
        ("10.0.0.16",),
        ("10.0.0.8",),
        {},
    )
    assert again(reg, renamed, retried).released == ()  # written: p6 is the status's now
    reg.apply_pool(pool("wide", "10.0.0.0/24", created=1))
    assert reg.apply_pool(pool("p6", "10.0.0.20/30")).moving == (ServiceKey("default", "dns"),)
    moved = again(reg, renamed, retried)
    assert moved.revoked["10.0.0.16"].endswith('no longer in pool "p6", which lbipam.io/pool names')


def test_a_pool_change_to_a_full_pool_stays_asked_for_when_its_status_write_failed() -> None:
    reg = registry(pool("p5", "10.0.0.8/30"), pool("p6", "10.0.0.16/32"))
    reg.ensure(service("web", pools=("p6",)))
    first = reg.ensure(service("dns", created=1, pools=("p5",)))
    full = service("dns", created=1, pools=("p6",))
    assert again(reg, full, first).addresses == ()  # PoolExhausted; the status write fails

    retried = again(reg, full, first)
    assert (retried.reason, retried.released, retried.revoked) == (
        Reason.POOL_EXHAUSTED,
        ("10.0.0.8",),
        {},
    )


def test_naming_a_pool_before_it_exists_is_asked_for_when_the_pool_comes() -> None:
    reg = registry(pool("p5", "10.0.0.8/30"))
    first = reg.ensure(service("dns", pools=("p5",)))
    early = service("dns", pools=("p9",))
    waiting = again(reg, early, first)
    assert (waiting.reason, waiting.addresses) == (Reason.NO_MATCHING_POOL, ("10.0.0.8",))

    reg.apply_pool(pool("p9", "10.0.0.16/30"))  # a pending Service is retried on pool changes
    moved = again(reg, early, waiting)
    assert (moved.addresses, moved.released, moved.revoked) == (
        ("10.0.0.16",),
        ("10.0.0.8",),
        {},
    )


def test_a_service_that_joins_another_sharing_group_has_its_address_released() -> None:
    reg = registry(pool("public", "10.0.0.8/30"))
    reg.ensure(service("web", sharing_key="edge", ports=frozenset({HTTP})))
    first = reg.ensure(service("dns", created=1, ports=frozenset({DNS})))
    joined = again(
        reg, service("dns", created=1, sharing_key="edge", ports=frozenset({DNS})), first
    )
    assert (joined.addresses, joined.released, joined.revoked) == (
        ("10.0.0.8",),
        ("10.0.0.9",),
        {},
    )


def test_removing_a_pool_revokes_only_addresses_no_other_pool_covers() -> None:
    reg = registry(pool("a", "10.0.0.0/30"), pool("b", "10.0.0.2/31", created=1))
    # b overlaps a, so a (older) hands out everything
    for i in range(4):
        reg.ensure(service(f"s{i}", created=i))
    change = reg.remove_pool("a")
    assert change == PoolChange(
        revoked=(ServiceKey("default", "s0"), ServiceKey("default", "s1")), conflicts=("b",)
    )
    status = reg.pool_summary("b")
    assert (status.conflict_with, status.allocated, status.available) == (None, 2, 0)
    assert reg.remove_pool("missing").revoked == ()


def test_an_invalid_pool_update_is_recorded_and_moves_nobody() -> None:
    reg = registry(pool("public", "10.0.0.0/29"))
    first = reg.ensure(service("web"))
    change = reg.apply_pool(pool("public", "10.0.0.9-10.0.0.1"))
    assert change.revoked == ()
    status = reg.pool_summary("public")
    assert status.error == (
        'addresses[0] "10.0.0.9-10.0.0.1": range end is below its start; '
        'write it as "10.0.0.1-10.0.0.9"'
    )
    assert status.state is PoolState.INVALID_SPEC and status.allocated == 1
    assert again(reg, service("web"), first).addresses == first.addresses
    assert reg.ensure(service("api", created=1)).reason is Reason.NO_MATCHING_POOL
    with pytest.raises(KeyError):
        reg.pool_summary("nope")


# ---- overlapping pools -------------------------------------------------------------------


def test_the_later_pool_of_two_overlapping_ones_is_in_conflict_and_hands_out_nothing() -> None:
    reg = registry(pool("old", "10.0.0.0/30"))
    reg.ensure(service("web"))
    change = reg.apply_pool(pool("new", "10.0.0.0/31", created=1))
    assert change.conflicts == ("new",)
    new = reg.pool_summary("new")
    assert (new.conflict_with, new.state, new.allocated, new.available) == (
        "old",
        PoolState.CONFLICT,
        1,
        1,
    )
    named = reg.ensure(service("api", created=1, pools=("new",)))
    assert (
        named.message == "no lbipam.io/pool can hand out an IPv4 address "
        '(pool "new" overlaps the older pool "old")'
    )
    reg.apply_pool(pool("new", "10.0.1.0/31", created=1))
    assert reg.pool_summary("new").conflict_with is None


def test_holders_keep_addresses_in_a_pool_that_falls_into_conflict() -> None:
    reg = registry(pool("b", "10.0.0.0/30", created=1))
    web = service("web", pools=("b",))
    first = reg.ensure(web)
    change = reg.apply_pool(pool("a", "10.0.0.0/29", created=0))
    assert (change.conflicts, reg.pool_summary("b").conflict_with) == (("b",), "a")
    assert again(reg, web, first).addresses == first.addresses
    assert [allocated(reg, name) for name in ("a", "b")] == [1, 1]
    assert (reg.pool_of("10.0.0.0"), reg.pool_of("10.0.0.7")) == ("a", "a")
    assert (reg.pool_of("192.0.2.1"), reg.pool_of("garbage")) == (None, None)


def test_pool_names_are_sorted() -> None:
    assert registry(pool("z", "10.0.0.1"), pool("a", "10.0.0.2")).pool_names() == ["a", "z"]


def test_an_ipv6_slash_64_reports_exact_counts() -> None:
    reg = registry(pool("v6", "2001:db8:1::/64", "10.0.0.0/24"))
    reg.ensure(service("web", families=(6,)))
    status = reg.pool_summary("v6")
    assert [(c.family, c.total, c.allocated) for c in status.counts] == [(4, 256, 0), (6, 2**64, 1)]
    assert (status.total, status.available) == (2**64 + 256, 2**64 + 255)


# ---- start-up ----------------------------------------------------------------------------


def test_rebuild_gives_a_duplicate_to_the_older_service() -> None:
    reg = registry(pool("public", "10.0.0.0/29"))
    losers = reg.rebuild(
        [
            service("young", created=9, held=("10.0.0.1",)),
            service("b", created=1, held=("10.0.0.1",)),
            service("a", created=1, held=("10.0.0.1",)),
            service("elsewhere", created=0, held=("192.0.2.1",)),
            service("s1", created=2, held=("10.0.0.2",), sharing_key="k", ports=frozenset({HTTP})),
            service("s2", created=3, held=("10.0.0.2",), sharing_key="k", ports=frozenset({DNS})),
        ]
    )
    assert losers == (ServiceKey("default", "b"), ServiceKey("default", "young"))
    assert reg.held_by(ServiceKey("default", "a")) == ("10.0.0.1",)
    assert reg.held_by(ServiceKey("default", "elsewhere")) == ()
    assert reg.held_by(ServiceKey("default", "s2")) == ("10.0.0.2",)
    assert allocated(reg, "public") == 2


def test_rebuild_replaces_what_the_registry_held() -> None:
    reg = registry(pool("public", "10.0.0.0/29"))
    reg.ensure(service("gone"))
    assert reg.rebuild([service("web", held=("10.0.0.3",))]) == ()
    assert reg.holders("public") == (ServiceKey("default", "web"),)
    assert reg.pool_summary("public").allocated == 1


def test_owners_of_an_address_names_who_holds_it_and_pool_of_where_it_lies() -> None:
    reg = registry(pool("public", "10.0.0.0/30"))
    reg.ensure(service("web"))

    assert reg.owners_of("10.0.0.0") == (ServiceKey("default", "web"),)
    assert reg.owners_of("10.0.0.1") == ()
    assert reg.owners_of("not-an-ip") == ()
    assert reg.pool_of("10.0.0.3") == "public"
    assert reg.pool_of("10.0.0.4") is None


def test_applying_an_unchanged_pool_again_changes_nothing() -> None:
    spec = pool("public", "10.0.0.0/30")
    reg = registry(spec)
    reg.ensure(service("web"))

    assert reg.apply_pool(spec) == PoolChange((), ())
    assert reg.pool_summary("public").allocated == 1


def test_conflicts_among_many_pools_match_a_pairwise_check() -> None:
    """Each pool overlapping an older one is in conflict with the oldest such, no chaining."""
    rng = random.Random(7)
    specs = []
    for index in range(120):
        start = rng.randrange(0, 2000)
        end = start + rng.randrange(0, 40)
        first, last = (ipaddress.ip_address(0x0A000000 + n) for n in (start, end))
        specs.append(pool(f"p{index:03d}", f"{first}-{last}", created=rng.randrange(60)))
    reg = registry(*specs)

    def addresses(spec: PoolSpec) -> set[int]:
        first, last = (int(ipaddress.ip_address(a)) for a in spec.addresses[0].split("-"))
        return set(range(first, last + 1))

    by_age = sorted(specs, key=lambda s: (s.created, s.name))
    for index, spec in enumerate(by_age):
        older = [o for o in by_age[:index] if addresses(o) & addresses(spec)]
        expected = older[0].name if older else None
        assert reg.pool_summary(spec.name).conflict_with == expected, spec.name


def test_a_fresh_slash_24_never_hands_out_its_network_or_broadcast_address() -> None:
    reg = registry(pool("lan", "192.168.10.0/24", allow_first_last_ips=False))
    got = [reg.ensure(service(f"s{i}", created=i)).addresses for i in range(255)]
    assert got[0] == ("192.168.10.1",) and got[253] == ("192.168.10.254",)
    assert got[254] == (), "254 usable addresses, then exhausted"
    assert all(a not in (("192.168.10.0",), ("192.168.10.255",)) for a in got)
    refused = reg.ensure(service("static", load_balancer_ip="192.168.10.255"))
    assert refused.reason is Reason.ADDRESS_NOT_IN_POOL
    assert "allowFirstLastIPs" in refused.message


def test_a_held_network_address_is_kept_and_reported_as_held_not_revoked() -> None:
    reg = registry(pool("lan", "192.168.10.0/24", allow_first_last_ips=False))
    web = service("web", held=("192.168.10.0",))
    assert reg.rebuild([web]) == ()
    kept = reg.ensure(web)
    assert (kept.reason, kept.addresses, kept.released) == (
        Reason.ALLOCATED,
        ("192.168.10.0",),
        (),
    )
    assert reg.pool_summary("lan").total == 254


def test_a_pool_not_yet_protected_hands_out_nothing_until_it_is() -> None:
    reg = registry(pool("new", "10.0.0.0/29", protected=False))
    waiting = reg.ensure(service("web"))
    assert (waiting.reason, waiting.waiting) == (Reason.NO_MATCHING_POOL, True)
    assert "not yet protected" in waiting.message
    static = reg.ensure(service("static", load_balancer_ip="10.0.0.3"))
    assert (static.reason, static.waiting) == (Reason.ADDRESS_NOT_IN_POOL, True)
    assert reg.pool_summary("new").state is PoolState.PROTECTING
    reg.apply_pool(pool("new", "10.0.0.0/29"))
    assert reg.ensure(service("web")).addresses == ("10.0.0.0",)
    assert reg.pool_summary("new").state is PoolState.READY

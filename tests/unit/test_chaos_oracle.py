"""The chaos oracle reads docs/reference.md right: a wrong oracle would cry wolf or stay silent."""

from __future__ import annotations

from typing import Any

from tests.faults.chaos import covering, left
from tests.faults.checker import _held
from tests.faults.oracle import (
    CLAIM_SLACK,
    Cluster,
    PoolModel,
    cluster,
    consent_withdrawn,
    followed_group,
    holds,
    judge,
    namespace_limits,
    new_addresses,
    new_reserved,
    node_addresses,
    pool_models,
)


def pool(name: str, *addresses: str, created: str = "2026-01-01T00:00:00Z", **spec: Any) -> Any:
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": created,
            "generation": 1,
            "finalizers": ["lbipam.io/protection"],
        },
        "spec": {"addresses": list(addresses), **spec},
    }


def service(name: str, *addresses: str, reason: str = "Allocated", **spec: Any) -> Any:
    return {
        "metadata": {
            "name": name,
            "namespace": "a",
            "uid": name,
            "creationTimestamp": "t",
            "annotations": spec.pop("annotations", {}),
        },
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": name},
            "ports": [{"port": 80, "protocol": "TCP"}],
            **spec,
        },
        "status": {
            "loadBalancer": {"ingress": [{"ip": a} for a in addresses]},
            "conditions": [
                {
                    "type": "lbipam.io/AddressAllocated",
                    "status": "True" if addresses else "False",
                    "reason": reason,
                }
            ],
        },
    }


def world(pools: list[Any], services: list[Any], nodes: Any = (), claims: Any = ()) -> Cluster:
    return cluster(pools, [(_held(s), s) for s in services], {"a": {}}, [], nodes, claims)


def claim(address: str, service: str, held_since: str | None = None) -> Any:
    """Our IPAddress claim for Service a/<service>, a hold after release when `held_since`."""
    annotations = {"lbipam.io/held-since": held_since} if held_since else {}
    parent = {"group": "", "resource": "services", "namespace": "a", "name": service}
    return {
        "metadata": {"name": address, "annotations": annotations},
        "spec": {"parentRef": parent},
    }


def node(name: str, *addresses: str) -> Any:
    entries = [{"type": "InternalIP", "address": a} for a in addresses]
    return {"metadata": {"name": name}, "status": {"addresses": entries}}


T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
SINCE = "2027-01-15T08:00:00Z"


def invariants(now: Cluster) -> set[str]:
    return {v.invariant for v in judge(now, set())}


def test_an_ipv4_cidr_up_to_a_30_hands_out_neither_end_unless_allowed() -> None:
    assert PoolModel.of(pool("p", "10.0.0.0/30")).usable == {4: [(167772161, 167772162)]}
    assert PoolModel.of(pool("p", "10.0.0.0/31")).size() == 2
    assert PoolModel.of(pool("p", "10.0.0.0/30", allowFirstLastIPs=True)).size() == 4
    assert PoolModel.of(pool("p", "10.0.0.0-10.0.0.3")).size() == 4


def test_the_younger_of_two_overlapping_pools_is_in_conflict() -> None:
    pools = pool_models(
        [
            pool("young", "10.0.0.4-10.0.0.6", created="2026-01-02T00:00:00Z"),
            pool("old", "10.0.0.0/29"),
            pool("apart", "10.0.0.7", created="2026-01-03T00:00:00Z"),  # the /29's broadcast
        ]
    )
    assert pools["young"].conflict_with == "old"
    assert pools["old"].conflict_with is None and pools["apart"].conflict_with is None


def test_a_network_address_is_never_handed_out_but_a_holder_keeps_it() -> None:
    """Seed 4646: a held address inside a pool's CIDR stays, as docs/reference.md promises."""
    now = world([pool("p", "10.0.0.0/29")], [service("s", "10.0.0.0")])
    assert [v.invariant for v in new_addresses(now, {})] == ["new-address"]
    assert new_addresses(now, {"s": ("10.0.0.0",)}) == []
    assert "outside-pool" not in invariants(now)
    gone = world([pool("p", "10.0.0.8/29")], [service("s", "10.0.0.0")])
    assert "outside-pool" in invariants(gone)


def test_a_service_pending_while_a_pool_has_room_is_a_violation() -> None:
    pending = service("s", reason="PoolExhausted")
    assert "pending" in invariants(world([pool("p", "10.0.0.1")], [pending]))
    full = [pending, service("t", "10.0.0.1")]
    assert "pending" not in invariants(world([pool("p", "10.0.0.1")], full))


def test_a_static_address_in_use_leaves_the_service_pending_without_a_violation() -> None:
    asks = service("s", reason="AddressInUse", annotations={"lbipam.io/ips": "10.0.0.1"})
    now = world([pool("p", "10.0.0.1-10.0.0.5")], [asks, service("t", "10.0.0.1")])
    assert invariants(now) == set()


def test_two_services_on_one_address_without_a_sharing_key_are_a_duplicate() -> None:
    now = world([pool("p", "10.0.0.1")], [service("s", "10.0.0.1"), service("t", "10.0.0.1")])
    assert "duplicate" in invariants(now)


def test_source_ranges_need_a_policy_only_when_local_and_restricting() -> None:
    local = {"externalTrafficPolicy": "Local"}
    opened = service("s", "10.0.0.1", loadBalancerSourceRanges=["0.0.0.0/0", "198.18.0.0/24"])
    assert "policy" not in invariants(world([pool("p", "10.0.0.1")], [opened]))
    narrow = service("s", "10.0.0.1", loadBalancerSourceRanges=["198.18.0.0/24"], **local)
    assert "policy" in invariants(world([pool("p", "10.0.0.1")], [narrow]))
    snat = service("s", "10.0.0.1", loadBalancerSourceRanges=["198.18.0.0/24"])
    assert "policy" not in invariants(world([pool("p", "10.0.0.1")], [snat]))


def test_the_oracle_sees_the_first_ipv6_address_leave_every_pool() -> None:
    """Statuses write `2001:db8:5::`; the oracle's block must name it the same way."""
    v4_only = PoolModel.of(pool("p7", "198.18.0.12/31"))
    both = PoolModel.of(pool("p7", "198.18.0.12/31", "2001:db8:5::/126"))

    assert left("2001:db8:5::", (), covering([v4_only], "198.18.0", "2001:db8:5"))
    assert not left("2001:db8:5::", (), covering([both], "198.18.0", "2001:db8:5"))
    assert "2001:db8:5::0" not in covering([both], "198.18.0", "2001:db8:5")["p7"]


def test_an_address_leaves_a_service_that_names_a_pool_when_it_leaves_that_pool() -> None:
    """Chaos seed 4545: another pool covering the address does not keep it for the Service."""
    covered = covering(
        [PoolModel.of(pool("p5", "198.18.0.12/31")), PoolModel.of(pool("p20", "198.18.0.8/30"))],
        "198.18.0",
        "2001:db8:5",
    )
    assert left("198.18.0.9", ("p5",), covered)
    assert not left("198.18.0.9", (), covered)
    assert not left("198.18.0.12", ("p5",), covered)


def test_a_sharing_service_may_follow_an_older_member_of_its_group() -> None:
    shared = {"lbipam.io/sharing-key": "edge"}
    older = service("old", "198.18.0.13", annotations=dict(shared))
    younger = service("young", "198.18.0.13", annotations=dict(shared))
    older["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    younger["metadata"]["creationTimestamp"] = "2026-01-02T00:00:00Z"
    now = world([pool("p5", "198.18.0.12/31")], [older, younger])

    assert followed_group(now, now.services["young"], "198.18.0.12")
    assert not followed_group(now, now.services["old"], "198.18.0.12")
    assert not followed_group(now, now.services["young"], "198.18.0.13")


def sharer(name: str, namespace: str, created: str, *addresses: str, consent: str = "") -> Any:
    """A Service of sharing key "edge" in `namespace`, listing `consent` to share across."""
    annotations = {"lbipam.io/sharing-key": "edge"}
    if consent:
        annotations["lbipam.io/sharing-cross-namespace"] = consent
    body = service(name, *addresses, annotations=annotations)
    body["metadata"].update(namespace=namespace, creationTimestamp=created)
    return body


def test_two_namespaces_share_an_address_only_when_each_lists_the_other() -> None:
    p = pool("p5", "198.18.0.12/31")
    both = [sharer("web", "a", "1", "198.18.0.12", consent="b"), sharer("dns", "b", "2")]
    both[1]["spec"]["ports"] = [{"port": 53, "protocol": "UDP"}]
    both[1]["status"]["loadBalancer"]["ingress"] = [{"ip": "198.18.0.12"}]
    assert "duplicate" in invariants(world([p], both))  # b does not list a
    both[1]["metadata"]["annotations"]["lbipam.io/sharing-cross-namespace"] = "*"
    assert "duplicate" not in invariants(world([p], both))


def test_a_service_follows_an_older_one_of_another_namespace_only_with_consent_both_ways() -> None:
    p = pool("p5", "198.18.0.12/31")
    older = sharer("old", "a", "2026-01-01T00:00:00Z", "198.18.0.13", consent="b")
    younger = sharer("young", "b", "2026-01-02T00:00:00Z", "198.18.0.13", consent="a")
    younger["spec"]["ports"] = [{"port": 443, "protocol": "TCP"}]
    now = world([p], [older, younger])
    assert followed_group(now, now.services["young"], "198.18.0.12")
    older["metadata"]["annotations"]["lbipam.io/sharing-cross-namespace"] = "c"
    now = world([p], [older, younger])
    assert not followed_group(now, now.services["young"], "198.18.0.12")


def test_consent_withdrawn_leaves_the_older_its_address_and_moves_the_younger() -> None:
    p = pool("p5", "198.18.0.12/31")
    before = {"old": ("198.18.0.12",), "young": ("198.18.0.12",)}
    older = sharer("old", "a", "2026-01-01T00:00:00Z", "198.18.0.12", consent="b")
    moved = sharer("young", "b", "2026-01-02T00:00:00Z", "198.18.0.13")  # lists nobody now
    assert consent_withdrawn(world([p], [older, moved]), before) == []
    stayed = sharer("young", "b", "2026-01-02T00:00:00Z", "198.18.0.12")
    assert consent_withdrawn(world([p], [older, stayed]), before)
    robbed = sharer("old", "a", "2026-01-01T00:00:00Z", "198.18.0.13", consent="b")
    kept = sharer("young", "b", "2026-01-02T00:00:00Z", "198.18.0.12")
    assert consent_withdrawn(world([p], [robbed, kept]), before)


def test_a_service_newly_holding_a_node_address_is_a_violation_a_holder_from_before_is_not() -> (
    None
):
    now = world([pool("p", "10.0.0.1-10.0.0.3")], [service("old", "10.0.0.1")])
    now.nodes["10.0.0.1"] = "worker-1"

    assert node_addresses(now, {"old": ("10.0.0.1",)}) == []
    [found] = node_addresses(now, {})
    assert found.invariant == "node-address" and "Node worker-1" in found.text


def test_an_address_reserved_for_another_tenant_is_a_finding_and_a_waiting_one_is_not() -> None:
    shared = pool(
        "p",
        "10.0.0.0-10.0.0.1",
        reservations=[{"addresses": ["10.0.0.0"], "namespace": "a", "service": "web"}],
    )
    thief = world([shared], [service("thief", "10.0.0.0")])
    assert [v.invariant for v in new_reserved(thief, {})] == ["reservation"]
    web = world([shared], [service("web", "10.0.0.0")])
    assert new_reserved(web, {}) == []
    # The only free address is set aside for web: nobody else is owed one.
    waiting = world([shared], [service("web", "10.0.0.1"), service("api", reason="PoolExhausted")])
    assert "pending" not in invariants(waiting)


def test_a_namespace_growing_past_its_limit_is_a_finding_and_one_kept_after_lowering_is_not() -> (
    None
):
    limited = pool("p", "10.0.0.0-10.0.0.3", perNamespaceLimit=1)
    two = world([limited], [service("x", "10.0.0.0"), service("y", "10.0.0.1")])
    assert [v.invariant for v in namespace_limits(two, {"x": ("10.0.0.0",)})] == ["limit"]
    assert namespace_limits(two, {"x": ("10.0.0.0",), "y": ("10.0.0.1",)}) == []
    waiting = world(
        [limited], [service("x", "10.0.0.0"), service("y", reason="NamespaceLimitReached")]
    )
    assert "pending" not in invariants(waiting)


def test_claims_are_the_holders_and_the_holds_and_nobody_else_gets_a_held_address() -> None:
    held = pool("p", "10.0.0.1-10.0.0.3", releaseHold="30s")
    fine = world(
        [held],
        [service("api", "10.0.0.2")],
        claims=[claim("10.0.0.1", "web", SINCE), claim("10.0.0.2", "api")],
    )
    assert holds(fine, T0 + 10) == []
    thief = world(
        [held],
        [service("thief", "10.0.0.1")],
        claims=[claim("10.0.0.1", "web", SINCE)],
    )
    assert {v.invariant for v in holds(thief, T0 + 10)} == {"hold-taken"}
    unclaimed = world([held], [service("api", "10.0.0.2")])
    assert [v.invariant for v in holds(unclaimed, T0)] == ["claims"]


def test_a_claim_outliving_its_address_is_a_finding_only_once_past_the_operators_grace() -> None:
    """A leader cut off between a status write and the claim's release leaves the claim; the
    next collects it once it is older than the grace (docs/reference.md, Address claims)."""
    orphan = claim("10.0.0.1", "web")
    orphan["metadata"]["creationTimestamp"] = SINCE
    now = world([pool("p", "10.0.0.1-10.0.0.3")], [service("web")], claims=[orphan])
    assert holds(now, T0 + CLAIM_SLACK - 1) == []
    assert [v.invariant for v in holds(now, T0 + CLAIM_SLACK + 1)] == ["claims"]


def test_a_young_claim_a_service_let_go_of_keeps_the_address_from_others_until_the_slack() -> None:
    """Another replica's claim outlives its Service's hold on the address until 60 s old
    (docs/reference.md, Address claims): meanwhile nobody is owed the address."""
    kept = claim("10.0.0.1", "web")
    kept["metadata"]["creationTimestamp"] = SINCE
    now = world([pool("p", "10.0.0.1")], [service("web"), service("api")], claims=[kept])
    now.read_at = T0 + 1

    assert now.taken() == {"10.0.0.1"}
    assert "pending" not in {v.invariant for v in judge(now, set())}
    now.read_at = T0 + CLAIM_SLACK + 1
    assert "pending" in {v.invariant for v in judge(now, set())}


def test_a_hold_past_its_release_hold_is_a_finding() -> None:
    now = world(
        [pool("p", "10.0.0.1-10.0.0.3", releaseHold="5s")],
        [],
        claims=[claim("10.0.0.1", "web", SINCE)],
    )
    assert holds(now, T0 + 10) == []
    assert [v.invariant for v in holds(now, T0 + 30)] == ["hold-overdue"]


def test_a_service_back_during_its_hold_must_have_its_address_back() -> None:
    held = pool("p", "10.0.0.1-10.0.0.3", releaseHold="30s")
    claims = [claim("10.0.0.1", "web", SINCE)]
    elsewhere = world(
        [held], [service("web", "10.0.0.2")], claims=[*claims, claim("10.0.0.2", "web")]
    )
    assert "hold-kept" in {v.invariant for v in holds(elsewhere, T0)}
    asking = service("web", annotations={"lbipam.io/ips": "10.0.0.3"}, reason="AddressInUse")
    assert holds(world([held], [asking], claims=claims), T0) == []


def test_someone_asking_for_a_held_address_must_hear_address_held_naming_the_hold() -> None:
    held = pool("p", "10.0.0.1-10.0.0.3", releaseHold="30s")
    claims = [claim("10.0.0.1", "web", SINCE)]
    asks = {"annotations": {"lbipam.io/ips": "10.0.0.1"}}
    told = service("thief", reason="AddressHeld", **asks)
    told["status"]["conditions"][0]["message"] = "10.0.0.1 is held for Service a/web after ..."
    assert holds(world([held], [told], claims=claims), T0) == []
    untold = service("thief", reason="PoolExhausted", **asks)
    assert [v.invariant for v in holds(world([held], [untold], claims=claims), T0)] == [
        "hold-refusal"
    ]
    # Nothing pending: the held address is nobody's to hand out.
    assert "pending" not in invariants(world([held], [untold], claims=claims))


def test_a_hold_counts_toward_the_namespace_limit() -> None:
    limited = pool("p", "10.0.0.1-10.0.0.3", perNamespaceLimit=1, releaseHold="30s")
    claims = [claim("10.0.0.1", "web", SINCE)]
    waiting = world([limited], [service("api", reason="NamespaceLimitReached")], claims=claims)
    assert "pending" not in invariants(waiting)
    grew = world([limited], [service("api", "10.0.0.2")], claims=claims)
    assert [v.invariant for v in namespace_limits(grew, {})] == ["limit"]


def test_a_pool_containing_a_node_address_names_the_node_and_never_hands_it_out() -> None:
    body = pool("p", "10.0.0.1-10.0.0.3")
    body["status"] = {
        "conditions": [
            {"type": "OverlapsNodeAddress", "status": "True", "message": "Node worker-1 uses"}
        ]
    }
    now = world(
        [body], [service("api", reason="PoolExhausted")], nodes=[node("worker-1", "10.0.0.2")]
    )
    assert not now.pools["p"].contains("10.0.0.2") and now.pools["p"].covers("10.0.0.2")
    assert "node-pool" not in invariants_of(now, {"p"})
    silent = world([pool("p", "10.0.0.1-10.0.0.3")], [], nodes=[node("worker-1", "10.0.0.2")])
    assert "node-pool" in invariants_of(silent, {"p"})


def invariants_of(now: Cluster, scope: set[str]) -> set[str]:
    return {v.invariant for v in judge(now, scope)}


def test_a_dual_stack_service_is_owed_no_second_family_its_namespace_limit_has_no_room_for() -> (
    None
):
    """Found by chaos seed 1: each family fits a limit of 1 alone, the two together do not."""
    limited = pool("p", "10.0.0.1-10.0.0.3", "fd00::1-fd00::3", perNamespaceLimit=1)
    both = {"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv6", "IPv4"]}
    waiting = world([limited], [service("web", reason="NamespaceLimitReached", **both)])
    assert "pending" not in invariants(waiting)
    prefer = {"ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv4", "IPv6"]}
    empty = world([limited], [service("web", reason="NamespaceLimitReached", **prefer)])
    assert "pending" in invariants(empty)  # the first family fits: it is owed


def test_a_pool_containing_two_nodes_may_name_them_in_one_list() -> None:
    body = pool("p", "10.0.0.1-10.0.0.3")
    message = "contains an address of Node n0, n5: it is never handed out"
    body["status"] = {
        "conditions": [{"type": "OverlapsNodeAddress", "status": "True", "message": message}]
    }
    now = world([body], [], nodes=[node("n0", "10.0.0.1"), node("n5", "10.0.0.2")])
    assert "node-pool" not in invariants_of(now, {"p"})


def test_a_limit_binds_nothing_an_older_overlapping_pool_hands_out() -> None:
    """Found by chaos seed 2: the younger pool is in conflict and hands out nothing."""
    older = pool("old", "10.0.0.1-10.0.0.3")
    younger = pool(
        "young", "10.0.0.1-10.0.0.3", created="2026-01-02T00:00:00Z", perNamespaceLimit=1
    )
    two = world([older, younger], [service("x", "10.0.0.1"), service("y", "10.0.0.2")])
    assert namespace_limits(two, {"x": ("10.0.0.1",)}) == []


def test_a_static_request_for_an_address_another_services_young_claim_keeps_waits() -> None:
    """Chaos seed 7501 (episode 3199714372): after a change of leader web moved off the
    address the old leader had claimed for it, and the claim kept it until 60 s old
    (docs/reference.md, Address claims); api, asking for it, heard AddressInUse meanwhile."""
    kept = claim("10.0.0.1", "web")
    kept["metadata"]["creationTimestamp"] = SINCE
    asks = service("api", reason="AddressInUse", annotations={"lbipam.io/ips": "10.0.0.1"})
    now = world([pool("p", "10.0.0.1-10.0.0.5")], [service("web", "10.0.0.2"), asks], claims=[kept])
    now.read_at = T0 + 1

    assert "pending" not in invariants(now)
    now.read_at = T0 + CLAIM_SLACK + 1
    assert "pending" in invariants(now)


def test_a_static_request_waits_for_its_own_claim_an_earlier_leader_made_until_its_grace() -> None:
    """Chaos seed 7505 (episode 1174416776): the leader claimed 10.0.0.1 for api, as api asks,
    and lost its term before the status write landed; the next leader may not use a claim
    another term made (docs/reference.md, Address claims), so api waits until it is 60 s old."""
    own = claim("10.0.0.1", "api")
    own["metadata"]["creationTimestamp"] = SINCE
    asks = service("api", reason="AddressInUse", annotations={"lbipam.io/ips": "10.0.0.1"})
    now = world([pool("p", "10.0.0.1-10.0.0.5")], [asks], claims=[own])
    now.read_at = T0 + 1

    assert "pending" not in invariants(now)
    now.read_at = T0 + CLAIM_SLACK + 1
    assert "pending" in invariants(now)


def test_joining_a_sharing_group_waits_while_the_namespace_is_at_the_pools_limit() -> None:
    """Chaos seed 7501 (episode 1018086629): a shared address counts for each namespace
    sharing it (docs/reference.md, Per-namespace limit), so b's Service joining a's address
    waits with NamespaceLimitReached while b holds its one address of the pool."""
    limited = pool("p", "198.18.0.12/30", perNamespaceLimit=1)
    holder = sharer("web", "a", "2026-01-01T00:00:00Z", "198.18.0.12", consent="b")
    other = service("dns", "198.18.0.13")
    other["metadata"]["namespace"] = "b"
    joining = sharer("edge", "b", "2026-01-02T00:00:00Z", consent="a")
    joining["spec"]["ports"] = [{"port": 53, "protocol": "UDP"}]
    joining["status"]["conditions"][0]["reason"] = "NamespaceLimitReached"

    assert "pending" not in invariants(world([limited], [holder, other, joining]))
    del limited["spec"]["perNamespaceLimit"]
    assert "pending" in invariants(world([limited], [holder, other, joining]))

"""What NetworkPolicy a Service's loadBalancerSourceRanges turn into, and which warnings it gets."""

from __future__ import annotations

import json
import random
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lbipam.api import LEGACY_SOURCE_RANGES as LEGACY_ANNOTATION
from lbipam.api import MANAGED_BY_LABEL
from lbipam.objects import service_view
from lbipam.policy.build import (
    PolicyPlan,
    PolicyWarning,
    build_policy,
    policy_name,
)
from lbipam.settings import Settings

DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def service(
    name: str = "web",
    *,
    ranges: list[str] | None = None,
    annotation: str | None = None,
    ports: list[dict[str, Any]] | None = None,
    selector: dict[str, str] | None = None,
    traffic_policy: str | None = "Local",
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": "LoadBalancer",
        "selector": {"app": name} if selector is None else selector,
        "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}] if ports is None else ports,
    }
    if ranges is not None:
        spec["loadBalancerSourceRanges"] = ranges
    if traffic_policy is not None:
        spec["externalTrafficPolicy"] = traffic_policy
    metadata: dict[str, Any] = {"name": name, "namespace": "shop", "uid": f"uid-{name}"}
    if annotation is not None:
        metadata["annotations"] = {LEGACY_ANNOTATION: annotation}
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


def cidrs(plan: PolicyPlan) -> list[str]:
    """The ranges of the external rule, [] when the policy admits no external source."""
    assert plan.manifest is not None
    return [
        peer["ipBlock"]["cidr"]
        for rule in plan.manifest["spec"]["ingress"]
        for peer in rule["from"]
        if "ipBlock" in peer
    ]


def ports(plan: PolicyPlan) -> list[dict[str, Any]]:
    assert plan.manifest is not None
    rules = plan.manifest["spec"]["ingress"]
    assert all(rule["ports"] == rules[0]["ports"] for rule in rules)
    return list(rules[0]["ports"])


def reasons(plan: PolicyPlan) -> list[str]:
    return [w.reason for w in plan.warnings]


# --- the guide's example -------------------------------------------------------------------------


def test_sample_lb_fw_gets_a_policy_admitting_its_ranges_and_the_cluster() -> None:
    svc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "sample-lb-fw",
            "namespace": "default",
            "uid": "6f1c1b1e-7c1a-4f5e-9a51-1c2d3e4f5a6b",
        },
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": "sample-lb-fw"},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
            "externalTrafficPolicy": "Local",
            "loadBalancerSourceRanges": ["10.0.0.0/8"],
        },
    }

    plan = build_policy(svc)

    http = [{"protocol": "TCP", "port": 8080}]
    assert plan == PolicyPlan(
        name="lbipam-sample-lb-fw",
        manifest={
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {
                "name": "lbipam-sample-lb-fw",
                "namespace": "default",
                "labels": {"app.kubernetes.io/managed-by": "lbipam"},
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "Service",
                        "name": "sample-lb-fw",
                        "uid": "6f1c1b1e-7c1a-4f5e-9a51-1c2d3e4f5a6b",
                        "controller": True,
                        "blockOwnerDeletion": False,
                    }
                ],
            },
            "spec": {
                "podSelector": {"matchLabels": {"app": "sample-lb-fw"}},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": http},
                    {"from": [{"namespaceSelector": {}}], "ports": http},
                ],
            },
        },
        warnings=(),
    )


def test_with_cluster_access_turned_off_only_the_ranges_are_admitted() -> None:
    plan = build_policy(service(ranges=["10.0.0.0/8"]), allow_cluster=False)

    assert plan.manifest is not None
    assert plan.manifest["spec"]["ingress"] == [
        {
            "from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}],
            "ports": [{"protocol": "TCP", "port": 8080}],
        }
    ]


def test_the_policy_carries_the_managed_by_label() -> None:
    plan = build_policy(service(ranges=["10.0.0.0/8"]))

    assert plan.manifest is not None
    assert plan.manifest["metadata"]["labels"] == dict([MANAGED_BY_LABEL])


# --- naming --------------------------------------------------------------------------------------


def test_policy_is_named_after_the_service() -> None:
    assert policy_name("web") == "lbipam-web"
    assert build_policy(service("web")).name == "lbipam-web"


def test_a_name_too_long_for_an_object_is_shortened_with_a_stable_hash() -> None:
    long_name = "a" * 250
    sibling = "a" * 249 + "b"

    name = policy_name(long_name)

    assert len(name) <= 253
    assert DNS_SUBDOMAIN.fullmatch(name)
    assert name == policy_name(long_name)
    assert name != policy_name(sibling)


@pytest.mark.parametrize("separator", ["-", "."])
def test_a_shortened_name_never_ends_a_label_with_a_separator(separator: str) -> None:
    # The cut falls right after the separator, which must go before the hash is appended.
    name = policy_name("a" * 234 + separator + "b" * 20)

    assert DNS_SUBDOMAIN.fullmatch(name), name
    assert len(name) <= 253


_label = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)


@given(st.lists(_label, min_size=1, max_size=8).map(".".join).filter(lambda n: len(n) <= 253))
def test_any_valid_service_name_gives_a_valid_policy_name(service_name: str) -> None:
    name = policy_name(service_name)

    assert len(name) <= 253
    assert DNS_SUBDOMAIN.fullmatch(name)
    assert name.startswith("lbipam-")
    if len("lbipam-" + service_name) <= 253:
        assert name == "lbipam-" + service_name


# --- where the ranges come from ------------------------------------------------------------------


def test_the_legacy_annotation_is_read_with_whitespace_and_trailing_commas() -> None:
    plan = build_policy(service(annotation=" 10.0.0.0/8 ,192.168.1.0/24,, "))

    assert cidrs(plan) == ["10.0.0.0/8", "192.168.1.0/24"]
    assert plan.warnings == ()


def test_the_field_wins_over_the_annotation() -> None:
    plan = build_policy(service(ranges=["10.0.0.0/8"], annotation="192.168.0.0/16"))

    assert cidrs(plan) == ["10.0.0.0/8"]


def test_an_empty_field_falls_back_to_the_annotation() -> None:
    plan = build_policy(service(ranges=[], annotation="192.168.0.0/16"))

    assert cidrs(plan) == ["192.168.0.0/16"]


@pytest.mark.parametrize(
    "svc",
    [
        service(),
        service(ranges=[]),
        service(annotation=""),
        service(annotation=" , "),
        service(ranges=["0.0.0.0/0"]),
        service(ranges=["::/0"]),
        service(ranges=["0.0.0.0/0", "::/0"]),
        service(annotation="0.0.0.0/0"),
        service(ranges=["0.0.0.0/0"], traffic_policy="Cluster", selector={}),
    ],
    ids=[
        "no-ranges",
        "empty-field",
        "empty-annotation",
        "blank-annotation",
        "ipv4-everything",
        "ipv6-everything",
        "both-everything",
        "annotation-everything",
        "everything-without-selector",
    ],
)
def test_ranges_that_restrict_nothing_need_no_policy_and_no_warning(svc: dict[str, Any]) -> None:
    plan = build_policy(svc)

    assert plan == PolicyPlan("lbipam-web", None, ())


def test_everything_for_ipv4_but_a_range_for_ipv6_restricts_only_ipv6() -> None:
    plan = build_policy(service(ranges=["2001:db8::/32", "10.0.0.0/8", "0.0.0.0/0"]))

    # 10.0.0.0/8 is already inside 0.0.0.0/0.
    assert cidrs(plan) == ["0.0.0.0/0", "2001:db8::/32"]


# --- normalisation and order ---------------------------------------------------------------------


def test_ranges_are_masked_deduplicated_and_sorted_ipv4_first_in_numeric_order() -> None:
    plan = build_policy(
        service(
            ranges=[
                "2001:db8:1::/48",
                "10.1.2.3/8",
                "9.0.0.0/8",
                "10.0.0.0/8",
                "2001:db8::5/32",
                "10.0.0.0/16",
            ]
        )
    )

    assert cidrs(plan) == [
        "9.0.0.0/8",
        "10.0.0.0/8",
        "10.0.0.0/16",
        "2001:db8::/32",
        "2001:db8:1::/48",
    ]
    assert plan.warnings == ()


_v4 = st.builds(lambda a, p: f"{a}/{p}", st.ip_addresses(v=4), st.integers(1, 32))
_v6 = st.builds(lambda a, p: f"{a}/{p}", st.ip_addresses(v=6), st.integers(1, 128))


@given(st.lists(_v4 | _v6, min_size=1, max_size=12), st.randoms())
def test_the_same_ranges_in_any_order_give_the_same_policy(
    ranges: list[str], rnd: random.Random
) -> None:
    shuffled = ranges + ranges[:2]
    rnd.shuffle(shuffled)

    plan = build_policy(service(ranges=ranges))

    assert plan == build_policy(service(ranges=shuffled))
    got = cidrs(plan)
    assert len(got) == len(set(got))
    assert [":" in c for c in got] == sorted(":" in c for c in got)


# --- invalid ranges ------------------------------------------------------------------------------


def test_invalid_annotation_entries_are_named_and_the_valid_ones_still_apply() -> None:
    plan = build_policy(service(annotation="10.0.0.0/8, 10.0.0.300/24, office"))

    assert cidrs(plan) == ["10.0.0.0/8"]
    [warning] = plan.warnings
    assert warning.reason == "InvalidSourceRanges"
    assert "'10.0.0.300/24'" in warning.message
    assert "'office'" in warning.message
    assert LEGACY_ANNOTATION in warning.message


@pytest.mark.parametrize(
    "entry", ["192.0.2.7", "2001:db8::7", "10.0.0.0/255.0.0.0", "fe80::%eth0/64", "10.0.0.0/33"]
)
def test_entries_that_are_not_plain_cidrs_are_refused(entry: str) -> None:
    plan = build_policy(service(annotation=f"10.0.0.0/8,{entry}"))

    assert cidrs(plan) == ["10.0.0.0/8"]
    assert reasons(plan) == ["InvalidSourceRanges"]
    assert repr(entry) in plan.warnings[0].message


def test_a_bad_entry_in_the_field_is_reported_against_the_field() -> None:
    plan = build_policy(service(ranges=["10.0.0.0/8", "nope"]))

    assert reasons(plan) == ["InvalidSourceRanges"]
    assert "spec.loadBalancerSourceRanges" in plan.warnings[0].message


def test_when_no_entry_is_valid_external_traffic_is_denied_and_the_cluster_still_admitted() -> None:
    plan = build_policy(service(annotation="office, lab"))

    assert plan.manifest is not None
    assert plan.manifest["spec"]["ingress"] == [
        {"from": [{"namespaceSelector": {}}], "ports": [{"protocol": "TCP", "port": 8080}]}
    ]
    assert reasons(plan) == ["InvalidSourceRanges"]


def test_when_no_entry_is_valid_and_cluster_access_is_off_all_ingress_is_denied() -> None:
    plan = build_policy(service(annotation="office"), allow_cluster=False)

    assert plan.manifest is not None
    assert plan.manifest["spec"]["ingress"] == []
    assert plan.manifest["spec"]["policyTypes"] == ["Ingress"]


def test_everything_plus_a_typo_keeps_the_policy_because_the_intent_is_unclear() -> None:
    plan = build_policy(service(annotation="0.0.0.0/0, 2001:db8::/33x"))

    assert cidrs(plan) == ["0.0.0.0/0"]
    assert reasons(plan) == ["InvalidSourceRanges"]


# --- Services the policy cannot protect ----------------------------------------------------------


@pytest.mark.parametrize("selector", [{}, None], ids=["empty", "absent"])
def test_a_service_without_selector_gets_a_warning_and_no_policy(
    selector: dict[str, str] | None,
) -> None:
    svc = service(ranges=["10.0.0.0/8"])
    if selector is None:
        del svc["spec"]["selector"]
    else:
        svc["spec"]["selector"] = selector

    plan = build_policy(svc)

    assert plan.manifest is None
    assert plan.name == "lbipam-web"
    assert reasons(plan) == ["NoSelector"]


@pytest.mark.parametrize("traffic_policy", ["Cluster", None], ids=["cluster", "unset"])
def test_cluster_traffic_policy_makes_no_policy_and_says_what_stays_open(
    traffic_policy: str | None,
) -> None:
    plan = build_policy(service(ranges=["10.0.0.0/8"], traffic_policy=traffic_policy))

    assert plan.manifest is None
    assert plan.name == "lbipam-web"
    [warning] = plan.warnings
    assert warning.reason == "SourceRangesNotEnforceable"
    assert "kube-proxy still filters the LoadBalancer IP" in warning.message
    assert "node ports and the pod IPs are open" in warning.message
    assert "externalTrafficPolicy: Local" in warning.message


def test_local_traffic_policy_needs_no_warning() -> None:
    assert build_policy(service(ranges=["10.0.0.0/8"], traffic_policy="Local")).warnings == ()


def test_warnings_come_in_a_stable_order() -> None:
    plan = build_policy(service(annotation="10.0.0.0/8,bad", traffic_policy="Cluster"))

    assert reasons(plan) == ["InvalidSourceRanges", "SourceRangesNotEnforceable"]
    assert all(isinstance(w, PolicyWarning) and w.message for w in plan.warnings)


# --- ports ---------------------------------------------------------------------------------------


def test_ports_are_the_target_ports_with_their_protocols() -> None:
    plan = build_policy(
        service(
            ranges=["10.0.0.0/8"],
            ports=[
                {"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"},
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"name": "dns-tcp", "port": 53},
                {"name": "alt", "port": 8443, "targetPort": "https", "protocol": "TCP"},
                {"name": "sctp", "port": 9000, "targetPort": 9000, "protocol": "SCTP"},
            ],
        )
    )

    assert ports(plan) == [
        {"protocol": "SCTP", "port": 9000},
        {"protocol": "TCP", "port": 53},
        {"protocol": "TCP", "port": "https"},
        {"protocol": "UDP", "port": 53},
    ]


def test_ports_are_sorted_numerically_then_by_name() -> None:
    plan = build_policy(
        service(
            ranges=["10.0.0.0/8"],
            ports=[
                {"port": 1, "targetPort": "web"},
                {"port": 2, "targetPort": 10000},
                {"port": 3, "targetPort": "0web"},
                {"port": 4, "targetPort": 9000},
            ],
        )
    )

    assert [p["port"] for p in ports(plan)] == [9000, 10000, "0web", "web"]


def test_the_two_rules_do_not_share_port_dicts() -> None:
    plan = build_policy(service(ranges=["10.0.0.0/8"]))
    assert plan.manifest is not None
    external, cluster = plan.manifest["spec"]["ingress"]

    external["ports"][0]["port"] = 1

    assert cluster["ports"] == [{"protocol": "TCP", "port": 8080}]


def test_the_policy_does_not_alias_the_service() -> None:
    svc = service(ranges=["10.0.0.0/8"])
    plan = build_policy(svc)
    assert plan.manifest is not None

    plan.manifest["spec"]["podSelector"]["matchLabels"]["app"] = "other"

    assert svc["spec"]["selector"] == {"app": "web"}


def test_a_change_of_selector_ports_or_ranges_changes_the_policy() -> None:
    base = build_policy(service(ranges=["10.0.0.0/8"]))
    changed_selector = service(ranges=["10.0.0.0/8"], selector={"app": "web", "tier": "v2"})
    changed_ports = service(ranges=["10.0.0.0/8"], ports=[{"port": 80, "targetPort": 9090}])

    assert build_policy(changed_selector) != base
    assert build_policy(changed_ports) != base
    assert build_policy(service(ranges=["10.0.0.0/16"])) != base
    assert build_policy(service(ranges=["10.0.0.0/8"])) == base


@pytest.mark.parametrize(
    ("ranges", "annotation"), [(["198.18.0.0/24"], None), (None, "198.18.1.0/24")]
)
def test_the_view_kept_of_a_service_builds_the_policy_its_full_body_builds(
    ranges: list[str] | None, annotation: str | None
) -> None:
    """The operator keeps a trimmed body per Service; policies from it must not change."""
    body = service(ranges=ranges, annotation=annotation)
    metadata = body["metadata"]
    metadata.update(resourceVersion="7", generation=2, managedFields=[{"manager": "kubectl"}])
    metadata.setdefault("annotations", {})["kubectl.kubernetes.io/last-applied-configuration"] = (
        json.dumps(body)
    )
    body["spec"].update(clusterIP="10.96.0.10", ipFamilies=["IPv4"], sessionAffinity="None")

    view = service_view(body, Settings.load({"LBIPAM_NAMESPACE": "x"}))

    kept = build_policy(view.body)
    assert kept.manifest is not None
    assert kept == build_policy(body)
    assert "managedFields" not in view.body["metadata"]
    assert "clusterIP" not in view.body["spec"]
    assert view.resource_version == "7"

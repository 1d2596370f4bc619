"""Who gets through: the generated policies judged by an independent NetworkPolicy evaluator."""

from __future__ import annotations

from typing import Any

import pytest

from lbipam.api import LEGACY_SOURCE_RANGES as LEGACY_ANNOTATION
from lbipam.policy.build import build_policy
from tests.netpol_eval import ContainerPort, External, Pod, is_allowed

NAMESPACE = "shop"

# The backend of every Service below: app=web, serving "http" on 8080 and "metrics" on 9090.
BACKEND = Pod(
    namespace=NAMESPACE,
    labels={"app": "web", "pod-template-hash": "5d8f"},
    ip="10.244.1.7",
    ports=(ContainerPort("http", 8080), ContainerPort("metrics", 9090)),
)
# An in-cluster client in another namespace whose address lies in none of the ranges.
CLIENT_POD = Pod(
    namespace="frontend",
    labels={"app": "shop-ui"},
    ip="172.20.3.4",
    namespace_labels={"kubernetes.io/metadata.name": "frontend"},
)


def service(
    *,
    ranges: list[str] | None = None,
    annotation: str | None = None,
    target_port: int | str = 8080,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "web", "namespace": NAMESPACE, "uid": "uid-web"}
    if annotation is not None:
        metadata["annotations"] = {LEGACY_ANNOTATION: annotation}
    spec: dict[str, Any] = {
        "type": "LoadBalancer",
        "selector": {"app": "web"},
        "ports": [{"name": "http", "port": 80, "targetPort": target_port, "protocol": "TCP"}],
        "externalTrafficPolicy": "Local",
    }
    if ranges is not None:
        spec["loadBalancerSourceRanges"] = ranges
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


def policies(svc: dict[str, Any], *, allow_cluster: bool = True) -> list[dict[str, Any]]:
    manifest = build_policy(svc, allow_cluster=allow_cluster).manifest
    return [] if manifest is None else [manifest]


OFFICE = service(ranges=["10.0.0.0/8", "192.168.10.0/24"])
DUAL = service(ranges=["203.0.113.0/24", "2001:db8:100::/48"])
IPV4_OPEN = service(ranges=["0.0.0.0/0", "2001:db8:100::/48"])
NAMED = service(ranges=["10.0.0.0/8"], target_port="http")
ALL_INVALID = service(annotation="office-network")
OPEN = service(ranges=["0.0.0.0/0"])

CASES = [
    # (story, service, source, port, protocol, allow_cluster, allowed)
    ("client in the first range", OFFICE, External("10.20.30.40"), 8080, "TCP", True, True),
    ("client in the second range", OFFICE, External("192.168.10.200"), 8080, "TCP", True, True),
    ("client just outside a range", OFFICE, External("192.168.11.1"), 8080, "TCP", True, False),
    ("client on the internet", OFFICE, External("198.51.100.9"), 8080, "TCP", True, False),
    ("in range, port not served", OFFICE, External("10.20.30.40"), 9090, "TCP", True, False),
    (
        "in range, service port not the pod port",
        OFFICE,
        External("10.0.0.1"),
        80,
        "TCP",
        True,
        False,
    ),
    ("in range, wrong protocol", OFFICE, External("10.20.30.40"), 8080, "UDP", True, False),
    ("cluster pod on the served port", OFFICE, CLIENT_POD, 8080, "TCP", True, True),
    ("cluster pod on another port", OFFICE, CLIENT_POD, 9090, "TCP", True, False),
    ("cluster pod, cluster rule off", OFFICE, CLIENT_POD, 8080, "TCP", False, False),
    ("in range, cluster rule off", OFFICE, External("10.1.1.1"), 8080, "TCP", False, True),
    ("IPv6 client in range", DUAL, External("2001:db8:100:7::1"), 8080, "TCP", True, True),
    ("IPv6 client outside", DUAL, External("2001:db8:101::1"), 8080, "TCP", True, False),
    ("IPv4 client in dual ranges", DUAL, External("203.0.113.77"), 8080, "TCP", True, True),
    ("IPv4 ranges only, IPv6 client", NAMED, External("2001:db8::1"), 8080, "TCP", True, False),
    ("IPv4 open, any IPv4 client", IPV4_OPEN, External("198.51.100.9"), 8080, "TCP", True, True),
    ("IPv4 open, IPv6 outside", IPV4_OPEN, External("2001:db8:200::1"), 8080, "TCP", True, False),
    ("IPv4 open, IPv6 in range", IPV4_OPEN, External("2001:db8:100::1"), 8080, "TCP", True, True),
    ("named target port resolved", NAMED, External("10.9.9.9"), 8080, "TCP", True, True),
    ("named target port, other port", NAMED, External("10.9.9.9"), 9090, "TCP", True, False),
    (
        "no valid range: external denied",
        ALL_INVALID,
        External("10.0.0.1"),
        8080,
        "TCP",
        True,
        False,
    ),
    ("no valid range: cluster admitted", ALL_INVALID, CLIENT_POD, 8080, "TCP", True, True),
    ("no valid range, no cluster rule", ALL_INVALID, CLIENT_POD, 8080, "TCP", False, False),
    ("no restriction: anyone", OPEN, External("198.51.100.9"), 9090, "TCP", True, True),
]


@pytest.mark.parametrize(
    ("svc", "source", "port", "protocol", "allow_cluster", "allowed"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_who_reaches_the_backend(
    svc: dict[str, Any],
    source: Pod | External,
    port: int,
    protocol: str,
    allow_cluster: bool,
    allowed: bool,
) -> None:
    got = is_allowed(policies(svc, allow_cluster=allow_cluster), BACKEND, source, port, protocol)

    assert got is allowed


def test_pods_the_service_does_not_select_are_left_alone() -> None:
    other = Pod(namespace=NAMESPACE, labels={"app": "db"}, ports=(ContainerPort("pg", 5432),))

    assert is_allowed(policies(OFFICE), other, External("198.51.100.9"), 5432)


def test_a_same_named_app_in_another_namespace_is_left_alone() -> None:
    elsewhere = Pod(namespace="staging", labels={"app": "web"}, ports=BACKEND.ports)

    assert is_allowed(policies(OFFICE), elsewhere, External("198.51.100.9"), 8080)


# --- the evaluator itself, on hand-written policies ----------------------------------------------


def policy(spec: dict[str, Any], namespace: str = NAMESPACE) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": namespace}, "spec": spec}


def test_eval_ip_block_except_carves_out_a_hole() -> None:
    pol = policy(
        {
            "podSelector": {},
            "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]}],
        }
    )

    assert is_allowed([pol], BACKEND, External("10.2.0.1"), 8080)
    assert not is_allowed([pol], BACKEND, External("10.1.0.1"), 8080)


def test_eval_match_expressions() -> None:
    selector = {
        "matchExpressions": [
            {"key": "app", "operator": "In", "values": ["web", "api"]},
            {"key": "tier", "operator": "NotIn", "values": ["canary"]},
            {"key": "pod-template-hash", "operator": "Exists"},
            {"key": "debug", "operator": "DoesNotExist"},
        ]
    }
    pol = policy({"podSelector": selector, "ingress": []})

    assert not is_allowed([pol], BACKEND, External("10.0.0.1"), 8080)
    canary = Pod(NAMESPACE, {**BACKEND.labels, "tier": "canary"})
    assert is_allowed([pol], canary, External("10.0.0.1"), 8080)


def test_eval_peer_selectors() -> None:
    same_ns_pod = Pod(NAMESPACE, {"role": "probe"}, namespace_labels={"team": "shop"})
    pol = policy(
        {
            "podSelector": {},
            "ingress": [
                {"from": [{"podSelector": {"matchLabels": {"role": "probe"}}}]},
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "frontend"}
                            },
                            "podSelector": {"matchLabels": {"app": "shop-ui"}},
                        }
                    ]
                },
            ],
        }
    )

    assert is_allowed([pol], BACKEND, same_ns_pod, 1)
    assert is_allowed([pol], BACKEND, CLIENT_POD, 1)
    assert not is_allowed([pol], BACKEND, Pod("frontend", {"role": "probe"}), 1)
    assert not is_allowed([pol], BACKEND, External(CLIENT_POD.ip), 1)


def test_eval_ports_named_ranges_and_default_protocol() -> None:
    pol = policy(
        {
            "podSelector": {},
            "ingress": [
                {
                    "ports": [
                        {"port": "metrics"},
                        {"port": 30000, "endPort": 30010, "protocol": "UDP"},
                    ]
                }
            ],
        }
    )
    source = External("198.51.100.1")

    assert is_allowed([pol], BACKEND, source, 9090)
    assert not is_allowed([pol], BACKEND, source, 9090, "UDP")
    assert is_allowed([pol], BACKEND, source, 30005, "UDP")
    assert not is_allowed([pol], BACKEND, source, 30011, "UDP")


def test_eval_egress_only_policies_do_not_isolate_ingress() -> None:
    pol = policy({"podSelector": {}, "policyTypes": ["Egress"], "egress": []})

    assert is_allowed([pol], BACKEND, External("198.51.100.1"), 8080)


def test_eval_rejects_an_ip_block_mixed_with_selectors() -> None:
    peer = {"ipBlock": {"cidr": "10.0.0.0/8"}, "namespaceSelector": {}}
    pol = policy({"podSelector": {}, "ingress": [{"from": [peer]}]})

    with pytest.raises(ValueError, match="ipBlock"):
        is_allowed([pol], BACKEND, External("10.0.0.1"), 8080)

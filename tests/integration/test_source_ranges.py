"""loadBalancerSourceRanges become NetworkPolicies that follow the Service."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from tests.controlplane import ControlPlane
from tests.kit import (
    REPO,
    Pools,
    create,
    eventually,
    load_yaml,
    policy,
    service_manifest,
    subnet,
    wait_address,
    wait_event,
    wait_no_policy,
    wait_policy,
)
from tests.operator_process import OperatorProcess


def fw_service(namespace: str, core: client.CoreV1Api) -> Any:
    (doc,) = [
        d
        for d in load_yaml(REPO / "deploy/examples/services.yaml")
        if d["metadata"]["name"] == "sample-lb-fw"
    ]
    doc["metadata"]["namespace"] = namespace
    return create(core, namespace, doc)


def test_the_guides_firewalled_service_gets_exactly_the_expected_policy(
    core: client.CoreV1Api, networking: client.NetworkingV1Api, pools: Pools, namespace: str
) -> None:
    pools.create([f"{subnet()}.0/28"])
    service = fw_service(namespace, core)
    wait_address(core, namespace, "sample-lb-fw")

    made = wait_policy(networking, namespace, "lbipam-sample-lb-fw")

    ports = [{"port": 8080, "protocol": "TCP"}]
    assert made["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "lbipam"}
    assert made["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "name": "sample-lb-fw",
            "uid": service.metadata.uid,
            "controller": True,
            "blockOwnerDeletion": False,
        }
    ]
    assert made["spec"] == {
        "podSelector": {"matchLabels": {"app": "sample"}},
        "policyTypes": ["Ingress"],
        "ingress": [
            {"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": ports},
            {"from": [{"namespaceSelector": {}}], "ports": ports},
        ],
    }


def test_the_policy_follows_edits_and_goes_with_the_ranges(
    core: client.CoreV1Api, networking: client.NetworkingV1Api, pools: Pools, namespace: str
) -> None:
    pools.create([f"{subnet()}.0/28"])
    create(
        core,
        namespace,
        service_manifest(
            "fw", loadBalancerSourceRanges=["192.0.2.0/24"], externalTrafficPolicy="Local"
        ),
    )
    wait_policy(networking, namespace, "lbipam-fw")

    core.patch_namespaced_service(
        "fw",
        namespace,
        {
            "spec": {
                "loadBalancerSourceRanges": ["198.51.100.0/24", "2001:db8::/32"],
                "selector": {"app": "new"},
                "ports": [{"port": 80, "targetPort": "https", "protocol": "TCP"}],
            }
        },
    )

    edited = wait_policy(
        networking,
        namespace,
        "lbipam-fw",
        lambda p: p["spec"]["podSelector"] == {"matchLabels": {"app": "new"}},
        timeout=2,
    )
    assert edited["spec"]["ingress"][0] == {
        "from": [{"ipBlock": {"cidr": "198.51.100.0/24"}}, {"ipBlock": {"cidr": "2001:db8::/32"}}],
        "ports": [{"port": "https", "protocol": "TCP"}],
    }

    core.patch_namespaced_service("fw", namespace, {"spec": {"loadBalancerSourceRanges": None}})
    wait_no_policy(networking, namespace, "lbipam-fw")


def test_a_hand_deleted_or_edited_policy_comes_back(
    core: client.CoreV1Api, networking: client.NetworkingV1Api, pools: Pools, namespace: str
) -> None:
    pools.create([f"{subnet()}.0/28"])
    create(
        core,
        namespace,
        service_manifest(
            "fw", loadBalancerSourceRanges=["192.0.2.0/24"], externalTrafficPolicy="Local"
        ),
    )
    original = wait_policy(networking, namespace, "lbipam-fw")

    networking.patch_namespaced_network_policy(
        "lbipam-fw", namespace, {"spec": {"podSelector": {"matchLabels": {"app": "hijacked"}}}}
    )
    restored = wait_policy(
        networking, namespace, "lbipam-fw", lambda p: p["spec"] == original["spec"]
    )
    assert restored["spec"]["podSelector"] == {"matchLabels": {"app": "fw"}}

    networking.delete_namespaced_network_policy("lbipam-fw", namespace)
    recreated = wait_policy(
        networking,
        namespace,
        "lbipam-fw",
        lambda p: p["metadata"]["uid"] != original["metadata"]["uid"],
    )
    assert recreated["spec"] == original["spec"]


def test_deleting_the_service_lets_the_garbage_collector_remove_the_policy(
    core: client.CoreV1Api, networking: client.NetworkingV1Api, pools: Pools, namespace: str
) -> None:
    pools.create([f"{subnet()}.0/28"])
    create(
        core,
        namespace,
        service_manifest(
            "fw", loadBalancerSourceRanges=["192.0.2.0/24"], externalTrafficPolicy="Local"
        ),
    )
    wait_policy(networking, namespace, "lbipam-fw")

    core.delete_namespaced_service("fw", namespace)

    eventually(
        lambda: policy(networking, namespace, "lbipam-fw") is None,
        timeout=30,
        what="the policy to be garbage-collected",
    )


def test_a_foreign_policy_with_our_name_is_left_alone(
    core: client.CoreV1Api, networking: client.NetworkingV1Api, pools: Pools, namespace: str
) -> None:
    pools.create([f"{subnet()}.0/28"])
    foreign = {
        "metadata": {"name": "lbipam-fw"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }
    networking.create_namespaced_network_policy(namespace, foreign)
    create(
        core,
        namespace,
        service_manifest(
            "fw", loadBalancerSourceRanges=["192.0.2.0/24"], externalTrafficPolicy="Local"
        ),
    )

    warning = wait_event(core, namespace, "fw", "PolicyNameTaken")

    assert "not managed by lbipam" in warning.message
    kept = policy(networking, namespace, "lbipam-fw")
    assert kept is not None
    assert kept["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    assert "labels" not in kept["metadata"]


def test_warnings_tell_the_user_what_cannot_be_enforced(
    core: client.CoreV1Api, networking: client.NetworkingV1Api, pools: Pools, namespace: str
) -> None:
    pools.create([f"{subnet()}.0/28"])
    no_selector = service_manifest(
        "headless-fw", loadBalancerSourceRanges=["192.0.2.0/24"], externalTrafficPolicy="Local"
    )
    del no_selector["spec"]["selector"]
    create(core, namespace, no_selector)
    create(core, namespace, service_manifest("snat", loadBalancerSourceRanges=["192.0.2.0/24"]))

    assert wait_event(core, namespace, "headless-fw", "NoSelector").type == "Warning"
    snat = wait_event(core, namespace, "snat", "SourceRangesNotEnforceable")
    assert "externalTrafficPolicy: Local" in snat.message
    assert policy(networking, namespace, "lbipam-snat") is None
    assert policy(networking, namespace, "lbipam-headless-fw") is None


def test_turning_the_feature_off_removes_managed_policies_and_on_brings_them_back(
    core: client.CoreV1Api,
    networking: client.NetworkingV1Api,
    pools: Pools,
    namespace: str,
    operator: OperatorProcess,
    control_plane: ControlPlane,
) -> None:
    pools.create([f"{subnet()}.0/28"])
    create(
        core,
        namespace,
        service_manifest(
            "fw", loadBalancerSourceRanges=["192.0.2.0/24"], externalTrafficPolicy="Local"
        ),
    )
    wait_policy(networking, namespace, "lbipam-fw")

    operator.stop()
    off = OperatorProcess(control_plane, LBIPAM_SOURCE_RANGES="off").start()
    try:
        wait_no_policy(networking, namespace, "lbipam-fw")
    finally:
        off.cleanup()
        operator.start()

    wait_policy(networking, namespace, "lbipam-fw")

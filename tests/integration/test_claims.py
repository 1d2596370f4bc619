"""Address claims: every held address is an IPAddress object the API server keeps unique."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch

from tests.controlplane import ControlPlane
from tests.kit import (
    Pools,
    create,
    eventually,
    ingress_ips,
    our_condition,
    service_manifest,
    subnet,
    wait_address,
    wait_reason,
)
from tests.operator_process import OperatorProcess

OURS = "ipaddress.kubernetes.io/managed-by=lbipam.io"


def claim(address: str, namespace: str, name: str, manager: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IPAddress",
        "metadata": {
            "name": address,
            "labels": {"ipaddress.kubernetes.io/managed-by": manager},
        },
        "spec": {
            "parentRef": {
                "group": "",
                "resource": "services",
                "namespace": namespace,
                "name": name,
            }
        },
    }


def claims(networking: client.NetworkingV1Api) -> dict[str, str]:
    """Our claims: address → the Service (namespace/name) it is claimed for."""
    items = networking.list_ip_address(label_selector=OURS).items
    return {
        c.metadata.name: f"{c.spec.parent_ref.namespace}/{c.spec.parent_ref.name}" for c in items
    }


def test_each_address_handed_out_is_claimed_for_its_service_and_freed_with_it(
    core: client.CoreV1Api, networking: client.NetworkingV1Api, pools: Pools, namespace: str
) -> None:
    pools.create([f"{subnet()}.0/29"])
    create(core, namespace, service_manifest("web"))
    [address] = wait_address(core, namespace, "web")
    assert claims(networking)[address] == f"{namespace}/web"

    core.delete_namespaced_service("web", namespace)

    eventually(lambda: address not in claims(networking), what=f"the claim on {address} freed")


def test_an_address_someone_else_claimed_is_never_handed_out_and_the_holder_is_named(
    core: client.CoreV1Api, networking: client.NetworkingV1Api, pools: Pools, namespace: str
) -> None:
    net = subnet()
    pools.create([f"{net}.1-{net}.3"])
    networking.create_ip_address(claim(f"{net}.1", "default", "elsewhere", "example.com"))
    try:
        create(core, namespace, service_manifest("web"))
        assert wait_address(core, namespace, "web") == [f"{net}.2"]
        create(core, namespace, service_manifest("fixed", loadBalancerIP=f"{net}.1"))
        refused = wait_reason(core, namespace, "fixed", "AddressInUse")
        assert "managed by example.com" in refused.message
    finally:
        networking.delete_ip_address(f"{net}.1")


def test_a_pool_typed_over_the_service_cidr_never_hands_out_a_cluster_ip(
    core: client.CoreV1Api, pools: Pools, namespace: str
) -> None:
    name = pools.create(["10.96.0.1-10.96.0.3"])
    create(core, namespace, service_manifest("web"))

    def explained() -> Any:
        condition = our_condition(core.read_namespaced_service("web", namespace))
        return condition if condition and "has no IPv4 addresses" in condition.message else None

    waiting = eventually(explained, what="NoMatchingPool: the pool has no usable address")
    assert waiting.reason == "NoMatchingPool"
    assert ingress_ips(core.read_namespaced_service("web", namespace)) == []
    overlap = eventually(
        lambda: (
            pools.condition(name, "OverlapsServiceCIDR").get("status") == "True"
            and pools.condition(name, "OverlapsServiceCIDR")
        ),
        what="the overlap reported",
    )
    assert "ServiceCIDR kubernetes" in overlap["message"]
    pools.status(name, total="0")


def test_claims_and_statuses_that_disagree_at_start_up_are_made_to_agree(
    core: client.CoreV1Api,
    networking: client.NetworkingV1Api,
    pools: Pools,
    namespace: str,
    operator: OperatorProcess,
) -> None:
    net = subnet()
    pools.create([f"{net}.0/29"])
    for name in ("kept", "deleted"):
        create(core, namespace, service_manifest(name))
    [kept] = wait_address(core, namespace, "kept")
    [deleted] = wait_address(core, namespace, "deleted")

    operator.stop()
    core.delete_namespaced_service("deleted", namespace)  # its claim now has no status
    networking.delete_ip_address(kept)  # a status without its claim
    operator.start()

    # A restarted operator reads the cluster first; on a loaded machine that takes a while.
    eventually(
        lambda: deleted not in claims(networking), timeout=60, what="the orphaned claim released"
    )
    eventually(
        lambda: claims(networking).get(kept) == f"{namespace}/kept",
        timeout=60,
        what="the claim restored",
    )
    assert ingress_ips(core.read_namespaced_service("kept", namespace)) == [kept]


@pytest.fixture
def second_operator(
    control_plane: ControlPlane, operator_kubeconfig: Path
) -> Iterator[OperatorProcess]:
    """Another replica with leader election off, like the session's: two leaders at once."""
    process = OperatorProcess(control_plane, KUBECONFIG=str(operator_kubeconfig)).start()
    yield process
    process.cleanup()


def doubled(services: dict[str, list[str]]) -> list[tuple[str, list[str]]]:
    """Each address shown on more than one Service, with those Services."""
    held = Counter(ip for ips in services.values() for ip in ips)
    return [
        (ip, sorted(name for name, ips in services.items() if ip in ips))
        for ip, n in held.items()
        if n > 1
    ]


def told_of(replicas: dict[str, OperatorProcess], words: set[str]) -> list[str]:
    """Each replica's log lines that name one of the words (an address, a Service)."""
    return [
        f"{label}: {line}"
        for label, replica in replicas.items()
        for line in replica.logs(10**6).splitlines()
        if any(word in line for word in words)
    ]


def test_two_operators_leading_at_once_never_show_one_address_on_two_services(
    core: client.CoreV1Api,
    pools: Pools,
    namespace: str,
    operator: OperatorProcess,
    second_operator: OperatorProcess,
) -> None:
    pools.create([f"{subnet()}.0/24"])
    count = 120
    seen: dict[str, list[str]] = {}
    duplicates: list[tuple[str, list[str]]] = []
    stop = threading.Event()

    def observe() -> None:
        stream = watch.Watch()
        for event in stream.stream(core.list_namespaced_service, namespace, timeout_seconds=120):
            service = event["object"]
            seen[service.metadata.name] = [] if event["type"] == "DELETED" else ingress_ips(service)
            duplicates.extend(doubled(seen))
            if stop.is_set() or sum(map(bool, seen.values())) == count:
                stream.stop()

    watcher = threading.Thread(target=observe, daemon=True)
    watcher.start()
    for i in range(count):
        create(core, namespace, service_manifest(f"s-{i}"))
    for i in range(count):
        wait_address(core, namespace, f"s-{i}")
    stop.set()
    watcher.join(30)

    if duplicates:  # what a failure needs to be understood: does it last, who wrote what
        listed = core.list_namespaced_service(namespace).items
        ip, names = duplicates[0]
        words = {f" {ip} ", f" {ip},", f" {ip})", *(f"{namespace}/{name}:" for name in names)}
        lines = told_of({"session": operator, "second": second_operator}, words)
        print(f"at the end: {doubled({s.metadata.name: ingress_ips(s) for s in listed})}")
        print("\n".join(lines[-200:]))
    assert duplicates == [], f"one address on two Services at once: {duplicates[:3]}"
    assert all(our_condition(s) for s in core.list_namespaced_service(namespace).items)

"""IPPools through their life: bad specs, overlaps, edits, deletion while in use."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.kit import (
    Kubectl,
    Pools,
    create,
    eventually,
    ingress_ips,
    service_manifest,
    subnet,
    wait_address,
    wait_event,
    wait_reason,
    wait_service,
)


def pool_yaml(name: str, *addresses: str) -> str:
    entries = "".join(f"\n    - {a!r}" for a in addresses)
    return (
        f"apiVersion: lbipam.io/v1alpha1\nkind: IPPool\nmetadata:\n  name: {name}\n"
        f"spec:\n  addresses:{entries}\n"
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("10.9.0.0/33", '"10.9.0.0/33" is not a CIDR'),
        ("10.9.0.9-10.9.0.1", 'range "10.9.0.9-10.9.0.1" ends below its start'),
        ("10.9.0.1-2001:db8::1", 'range "10.9.0.1-2001:db8::1" mixes IPv4 and IPv6'),
        ("banana", '"banana" is not a CIDR'),
    ],
)
def test_kubectl_apply_rejects_a_bad_pool_naming_the_entry(
    kubectl: Kubectl, crds: None, entry: str, message: str
) -> None:
    result = kubectl("apply", "-f", "-", input=pool_yaml("bad", "10.8.0.0/24", entry), check=False)

    assert result.returncode != 0
    assert "spec.addresses[1]" in result.stderr
    assert message in result.stderr


def test_kubectl_apply_rejects_a_pool_without_addresses(kubectl: Kubectl, crds: None) -> None:
    result = kubectl("apply", "-f", "-", input=pool_yaml("empty") + "    []\n", check=False)

    assert result.returncode != 0
    assert "spec.addresses" in result.stderr and "at least 1 items" in result.stderr


def test_an_inverted_ipv6_range_is_reported_in_the_pool_condition(pools: Pools) -> None:
    pool = pools.create(["2001:db8:9::9-2001:db8:9::1"])

    ready = eventually(lambda: pools.condition(pool, "Ready") or None, what="Ready condition")

    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "2001:db8:9::9-2001:db8:9::1" in ready["message"]


def test_the_later_of_two_overlapping_pools_is_in_conflict_and_hands_out_nothing(
    core: client.CoreV1Api, pools: Pools, namespace: str
) -> None:
    net = subnet()
    first = pools.create([f"{net}.0/28"], name=f"{namespace}-first", priority=1)
    second = pools.create([f"{net}.8/29"], name=f"{namespace}-second", priority=9)

    conflict = eventually(
        lambda: (
            pools.condition(second, "Ready").get("reason") == "Conflict"
            and pools.condition(second, "Ready")
        ),
        what="Conflict on the later pool",
    )
    assert first in conflict["message"]
    assert pools.condition(first, "Ready")["status"] == "True"
    create(core, namespace, service_manifest("web"))
    assert wait_address(core, namespace, "web") == [f"{net}.0"]
    create(core, namespace, service_manifest("named", annotations={"lbipam.io/pool": second}))
    wait_reason(core, namespace, "named", "NoMatchingPool")


def test_growing_a_pool_moves_nobody_and_shrinking_it_moves_exactly_who_fell_out(
    core: client.CoreV1Api, pools: Pools, namespace: str
) -> None:
    net = subnet()
    pool = pools.create([f"{net}.0/29"])
    for name in ("a", "b", "c"):
        create(core, namespace, service_manifest(name))
        wait_address(core, namespace, name)
    before = {n: ingress_ips(core.read_namespaced_service(n, namespace)) for n in "abc"}
    assert before == {"a": [f"{net}.0"], "b": [f"{net}.1"], "c": [f"{net}.2"]}

    pools.patch(pool, {"addresses": [f"{net}.0/28"]})
    pools.status(pool, total="16")
    assert {n: ingress_ips(core.read_namespaced_service(n, namespace)) for n in "abc"} == before

    pools.patch(pool, {"addresses": [f"{net}.0/28"], "exclude": [f"{net}.1"]})

    moved = wait_service(
        core, namespace, "b", lambda s: ingress_ips(s) not in ([], [f"{net}.1"]), what="b moved"
    )
    assert ingress_ips(moved) == [f"{net}.3"]
    assert "is no longer in any pool" in wait_event(core, namespace, "b", "AddressRevoked").message
    assert ingress_ips(core.read_namespaced_service("a", namespace)) == [f"{net}.0"]
    assert ingress_ips(core.read_namespaced_service("c", namespace)) == [f"{net}.2"]


def test_a_disabled_pool_keeps_its_holders_but_hands_out_nothing_new(
    core: client.CoreV1Api, pools: Pools, namespace: str
) -> None:
    net = subnet()
    pool = pools.create([f"{net}.0/28"])
    create(core, namespace, service_manifest("kept"))
    assert wait_address(core, namespace, "kept") == [f"{net}.0"]

    pools.patch(pool, {"disabled": True})
    eventually(lambda: pools.condition(pool, "Ready").get("reason") == "Disabled", what="Disabled")
    create(core, namespace, service_manifest("new"))

    wait_reason(core, namespace, "new", "NoMatchingPool")
    assert ingress_ips(core.read_namespaced_service("kept", namespace)) == [f"{net}.0"]

    pools.patch(pool, {"disabled": False})
    assert wait_address(core, namespace, "new") == [f"{net}.1"]


def test_deleting_a_pool_in_use_waits_for_its_last_holder(
    core: client.CoreV1Api, pools: Pools, namespace: str, kubectl: Kubectl
) -> None:
    pool = pools.create([f"{subnet()}.0/28"])
    create(core, namespace, service_manifest("holder"))
    wait_address(core, namespace, "holder")
    eventually(
        lambda: "lbipam.io/protection" in (pools.get(pool)["metadata"].get("finalizers") or []),
        what="the protection finalizer",
    )

    pools.delete(pool)

    blocked = wait_event(core, "default", pool, "DeletionBlocked")
    assert f"{namespace}/holder" in blocked.message
    assert pools.get(pool)["metadata"]["deletionTimestamp"]
    core.delete_namespaced_service("holder", namespace)

    def gone() -> bool:
        return kubectl("get", "ippool", pool, check=False).returncode != 0

    eventually(gone, what=f"IPPool {pool} to be deleted")

"""A user edits, deletes and recreates an IPPool while Services come and go."""

from __future__ import annotations

import ipaddress

import pytest
from kubernetes import client

from tests.faults.checker import Held
from tests.faults.conftest import Case
from tests.kit import (
    Pools,
    create,
    events_for,
    eventually,
    ingress_ips,
    service_manifest,
    subnet,
    wait_address,
)

pytestmark = pytest.mark.faults


def test_a_pool_grown_shrunk_disabled_and_re_enabled_mid_burst_moves_only_what_it_revoked(
    case: Case, pools: Pools, core: client.CoreV1Api, namespace: str
) -> None:
    net = subnet()
    pool = pools.create([f"{net}.0/25"])
    for i in range(20):
        create(core, namespace, service_manifest(f"steady-{i}"))
    for i in range(20):
        wait_address(core, namespace, f"steady-{i}")
    burst = case.burst(creates=200)
    burst.wait_created(30)

    before = case.snapshot()
    pools.patch(pool, {"addresses": [f"{net}.0/24"]})
    case.fault("grown /25 -> /24")
    burst.wait_created(70)
    pools.patch(pool, {"addresses": [f"{net}.0/26"]})
    case.fault("shrunk to /26")
    burst.wait_created(110)
    pools.patch(pool, {"disabled": True})
    case.fault("disabled")
    burst.wait_created(150)
    pools.patch(pool, {"disabled": False, "addresses": [f"{net}.0/24"]})
    case.fault("re-enabled as /24")

    kept = ipaddress.ip_network(f"{net}.0/26")

    def revoked(_: Held, address: str) -> bool:
        return ipaddress.ip_address(address) not in kept  # the shrink took it away

    assert case.converge(before, may_move=revoked)
    steady = {f"steady-{i}" for i in range(20)}
    assert all(ingress_ips(s) for s in core.list_namespaced_service(namespace).items), (
        "the re-enabled pool has room for everyone"
    )
    assert all(
        b.addresses == before_held.addresses
        for b in case.snapshot().values()
        for before_held in [before.get(b.uid)]
        if before_held is not None and b.key.split("/")[1] in steady
    )


def test_a_pool_deleted_and_recreated_mid_burst_keeps_its_holders_until_they_go(
    case: Case,
    pools: Pools,
    core: client.CoreV1Api,
    namespace: str,
    custom: client.CustomObjectsApi,
) -> None:
    net_a, net_b = subnet(), subnet()
    first = pools.create([f"{net_a}.0/26"], name=f"{namespace}-a", priority=10)
    pools.create([f"{net_b}.0/24"], name=f"{namespace}-b")
    burst = case.burst(creates=200)
    burst.wait_created(50)

    before = case.snapshot()
    pools.delete(first)
    case.fault("pool deleted while Services hold its addresses")
    eventually(
        lambda: any(e.reason == "DeletionBlocked" for e in events_for(core, "default", first)),
        what="DeletionBlocked Event naming the holders",
    )
    burst.wait_created(110)
    inside = ipaddress.ip_network(f"{net_a}.0/26")
    for service in core.list_namespaced_service(namespace).items:
        if any(ipaddress.ip_address(ip) in inside for ip in ingress_ips(service)):
            core.delete_namespaced_service(service.metadata.name, namespace)
    case.fault("its last holders deleted")

    def gone() -> bool:
        try:
            custom.get_cluster_custom_object("lbipam.io", "v1alpha1", "ippools", first)
        except client.ApiException as error:
            return error.status == 404
        return False

    eventually(gone, timeout=30, what=f"IPPool {first} to be deleted")
    pools.create([f"{net_a}.0/26"], name=first, priority=10)
    case.fault("pool recreated")
    burst.wait_created(150)

    assert case.converge(before)
    assert any(
        ipaddress.ip_address(ip) in inside
        for s in core.list_namespaced_service(namespace).items
        for ip in ingress_ips(s)
    ), "the recreated pool hands out addresses again"

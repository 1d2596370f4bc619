"""Switching from MetalLB's controller (v0.15.3, built from its module) and back: 200 Services,
nothing moves either way (issue 25, part 5, for MetalLB)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests import kit
from tests.controlplane import ControlPlane
from tests.kit import Kubectl, create, ingress_ips, service_manifest, subnet, wait_address
from tests.migration import addresses, allocated_by_lbipam, convert_and_apply, moved, settled
from tests.operator_process import OperatorProcess
from tests.peers import METALLB_NAMESPACE, MetalLBController, install_metallb_crds

SERVICES = 200


@pytest.fixture
def metallb(control_plane: ControlPlane, kubectl: Kubectl) -> Iterator[MetalLBController]:
    install_metallb_crds(kubectl, control_plane)
    controller = MetalLBController(control_plane)
    yield controller
    controller.cleanup()


def annotations_of(index: int, main: str, pool_b: str) -> dict[str, str]:
    """Every tenth Service static, every tenth names the other pool, two in ten share."""
    kind, group = index % 10, index // 10
    if kind == 0:
        return {"metallb.io/loadBalancerIPs": f"{main}.{200 + group}"}
    if kind == 5:
        return {"metallb.io/address-pool": pool_b}
    if kind in (1, 2):
        key = "metallb.io/allow-shared-ip" if group % 2 else "metallb.universe.tf/allow-shared-ip"
        shared = {key: f"pair-{group}"}
        if group % 4 == 0:  # half of the pairs ask for their address too
            shared["metallb.io/loadBalancerIPs"] = f"{main}.{230 + group}"
        return shared
    return {}


def metallb_pool(kubectl: Kubectl, name: str, namespace: str, spec: dict[str, Any]) -> None:
    """A MetalLB pool for the test's namespace only."""
    spec["serviceAllocation"] = {"namespaces": [namespace]}
    pool = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": METALLB_NAMESPACE},
        "spec": spec,
    }
    kubectl("apply", "-f", "-", input=yaml.safe_dump(pool))


# The first run builds MetalLB's controller from its module: about 6 minutes on 2 busy cores.
@pytest.mark.timeout(1800)
def test_switching_from_metallb_and_back_moves_no_address(
    core: client.CoreV1Api,
    kubectl: Kubectl,
    control_plane: ControlPlane,
    operator_kubeconfig: Path,
    without_session_operator: None,
    metallb: MetalLBController,
    namespace: str,
) -> None:
    main, other = subnet(), subnet()
    pool_a, pool_b = f"a-{namespace}", f"b-{namespace}"
    metallb_pool(kubectl, pool_a, namespace, {"addresses": [f"{main}.0/24"]})
    metallb_pool(kubectl, pool_b, namespace, {"addresses": [f"{other}.0/26"], "autoAssign": False})
    lbipam = OperatorProcess(
        control_plane, KUBECONFIG=str(operator_kubeconfig), LBIPAM_NAMESPACE=kit.SYSTEM
    )
    try:
        # 1. MetalLB assigns 200 Services.
        metallb.start()
        for index in range(SERVICES):
            ports = [{"port": 443 if index % 10 == 2 else 80, "protocol": "TCP"}]
            asked = annotations_of(index, main, pool_b)
            create(
                core, namespace, service_manifest(f"s{index:03d}", annotations=asked, ports=ports)
            )
        before = settled(
            core, namespace, lambda s: bool(ingress_ips(s)), "given an address by MetalLB"
        )
        pairs = [g for g in range(SERVICES // 10) if before[f"s{g:02d}1"] == before[f"s{g:02d}2"]]
        held = {tuple(ips) for ips in before.values()}
        print(
            f"\nMetalLB: {len(before)} Services on {len(held)} addresses, {len(pairs)} pairs share"
        )

        # 2. Stop MetalLB; convert its pools from the cluster; apply them; start lbipam.
        metallb.stop()
        convert_and_apply(control_plane, kubectl, (pool_a, pool_b))
        lbipam.start()

        # 3. Nothing moved.
        after = settled(core, namespace, allocated_by_lbipam, "Allocated by lbipam")
        assert moved(before, after) == []
        print(f"MetalLB -> lbipam: {len(moved(before, after))} of {len(before)} moved")

        # 4. New Services asking in MetalLB's words get what they ask for.
        extra = {
            "n-static": ({"metallb.io/loadBalancerIPs": f"{main}.250"}, 80),
            "n-named": ({"metallb.io/address-pool": pool_b}, 80),
            "n-joins": ({"metallb.io/allow-shared-ip": "pair-1"}, 8080),
        }
        for name, (asked, port) in extra.items():
            ports = [{"port": port, "protocol": "TCP"}]
            create(core, namespace, service_manifest(name, annotations=asked, ports=ports))
        assert wait_address(core, namespace, "n-static") == [f"{main}.250"]
        assert wait_address(core, namespace, "n-named")[0].startswith(f"{other}.")
        assert wait_address(core, namespace, "n-joins") == after["s011"]

        # 5. A released address is handed out again, to a Service asking for it.
        core.delete_namespaced_service("s010", namespace)
        asked = {"metallb.io/loadBalancerIPs": f"{main}.201"}
        create(core, namespace, service_manifest("n-reuses", annotations=asked))
        assert wait_address(core, namespace, "n-reuses") == [f"{main}.201"]

        # 6. Back to MetalLB: nothing moves either.
        lbipam.stop()
        back_before = addresses(core, namespace)
        earlier = len(metallb.logs())
        metallb.start()
        create(core, namespace, service_manifest("n-probe"))  # served after every older one
        wait_address(core, namespace, "n-probe")
        back_after = addresses(core, namespace)
        back_moved = moved(back_before, back_after)
        # What MetalLB did on its return: adopted every address, allocated only the probe's.
        log = metallb.logs()[earlier:]
        allocated, cleared = log.count('"event":"ipAllocated"'), log.count("clearAssignment")
        print(
            f"lbipam -> MetalLB: {len(back_moved)} of {len(back_before)} moved; MetalLB "
            f"allocated {allocated} address(es), cleared {cleared} assignment(s)"
        )
        assert back_moved == [], log[-3000:]
        assert (allocated, cleared) == (1, 0), log[-3000:]
    finally:
        lbipam.cleanup()
        metallb.stop()
        for name in (pool_a, pool_b):
            kubectl("delete", "ippool", name, "--wait=false", check=False)
            kubectl("delete", "ipaddresspool", "-n", METALLB_NAMESPACE, name, check=False)

"""Switching from Cilium's LB-IPAM (the operator of v1.15.19, built from its module) and back:
200 Services, nothing moves either way (issue 25, part 5, for Cilium)."""

from __future__ import annotations

import time
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
from tests.peers import CiliumOperator, wait_cilium_crd

SERVICES = 200
NAMESPACE_LABEL = "io.kubernetes.service.namespace"  # Cilium's pseudo-label of each Service
# The names Cilium 1.15 reads; lbipam reads these and 1.16's lbipam.cilium.io/ips and /sharing-key.
IPS, SHARING_KEY = "io.cilium/lb-ipam-ips", "io.cilium/lb-ipam-sharing-key"
IPS_116, SHARING_KEY_116 = "lbipam.cilium.io/ips", "lbipam.cilium.io/sharing-key"


@pytest.fixture
def cilium(control_plane: ControlPlane) -> Iterator[CiliumOperator]:
    operator = CiliumOperator(control_plane)
    yield operator
    operator.cleanup()


def wait_initialized(cilium: CiliumOperator, since: int) -> None:
    """Until Cilium's LB-IPAM has handled every Service it listed at its start."""
    kit.eventually(
        lambda: CiliumOperator.INITIALIZED in cilium.logs()[since:],
        timeout=180,
        interval=0.5,
        what="Cilium's LB-IPAM to initialize",
    )


def cilium_pools(kubectl: Kubectl, namespace: str, nets: tuple[str, str, str]) -> tuple[str, ...]:
    """Three pools for the test's namespace only: the main one, gold Services' one, a disabled."""
    main, gold, off = nets
    mine = {NAMESPACE_LABEL: namespace}
    specs = {
        f"a-{namespace}": {  # allowFirstLastIPs unset: Cilium 1.15 reserves .0 and .255
            "blocks": [{"cidr": f"{main}.0/24"}],
            "serviceSelector": {
                "matchLabels": mine,
                "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["gold"]}],
            },
        },
        f"gold-{namespace}": {
            "blocks": [{"cidr": f"{gold}.0/27"}],
            "allowFirstLastIPs": "Yes",
            "serviceSelector": {"matchLabels": {**mine, "tier": "gold"}},
        },
        f"off-{namespace}": {
            "blocks": [{"start": f"{off}.1", "stop": f"{off}.50"}],
            "disabled": True,
            "serviceSelector": {"matchLabels": mine},
        },
    }
    for name, spec in specs.items():
        pool = {
            "apiVersion": "cilium.io/v2alpha1",
            "kind": "CiliumLoadBalancerIPPool",
            "metadata": {"name": name},
            "spec": spec,
        }
        kubectl("apply", "-f", "-", input=yaml.safe_dump(pool))
    return tuple(specs)


def service_of(index: int, main: str) -> dict[str, Any]:
    """Every tenth Service static, every tenth gold (the gold pool selects it), two in ten share."""
    kind, group = index % 10, index // 10
    annotations: dict[str, str] = {}
    labels: dict[str, str] = {}
    if kind == 0:
        annotations[IPS] = f"{main}.{200 + group}"
    elif kind == 5:
        labels["tier"] = "gold"
    elif kind in (1, 2):
        annotations[SHARING_KEY] = f"pair-{group}"
        if group % 4 == 0:  # a quarter of the pairs ask for their address too
            annotations[IPS] = f"{main}.{230 + group}"
    ports = [{"port": 443 if kind == 2 else 80, "protocol": "TCP"}]
    return service_manifest(f"s{index:03d}", annotations=annotations, labels=labels, ports=ports)


def cilium_did_as_asked(before: dict[str, list[str]], main: str, gold: str) -> None:
    """The starting point is what Cilium's annotations and pools say, or the story proves little."""
    groups = range(SERVICES // 10)
    assert all(before[f"s{g:02d}0"] == [f"{main}.{200 + g}"] for g in groups), before
    assert all(before[f"s{g:02d}5"][0].startswith(f"{gold}.") for g in groups), before
    assert all(before[f"s{g:02d}1"] == before[f"s{g:02d}2"] for g in groups), before
    assert all(before[f"s{g:02d}1"] == [f"{main}.{230 + g}"] for g in groups if g % 4 == 0)
    # allowFirstLastIPs: the gold /27's first address is its first handed out ("Yes"); the /24
    # (unset) keeps its ends.
    held = [ip for ips in before.values() for ip in ips]
    assert f"{gold}.0" in held and not {f"{main}.0", f"{main}.255"} & set(held), held


def highest_free(net: str, held: dict[str, list[str]]) -> list[str]:
    """The free addresses of the /24, highest first: lbipam hands out the lowest to Services
    asking for none, so these stay free for Services asking for them meanwhile."""
    taken = {ip for ips in held.values() for ip in ips}
    return [ip for ip in (f"{net}.{n}" for n in range(254, 0, -1)) if ip not in taken]


def add_services(core: client.CoreV1Api, namespace: str, wanted: dict[str, Any]) -> None:
    """Services by name: (annotations, labels, port) each."""
    for name, (asked, labels, port) in wanted.items():
        ports = [{"port": port, "protocol": "TCP"}]
        manifest = service_manifest(name, annotations=asked, labels=labels, ports=ports)
        create(core, namespace, manifest)


def refused(core: client.CoreV1Api, namespace: str, name: str) -> str:
    """The reason lbipam gives a Service it cannot serve (and it holds nothing)."""
    service = kit.wait_service(
        core,
        namespace,
        name,
        lambda s: getattr(kit.our_condition(s), "status", None) == "False",
        what="lbipam's refusal",
    )
    assert ingress_ips(service) == []
    return str(kit.our_condition(service).reason)


def in_cilium_115_names(core: client.CoreV1Api, namespace: str) -> list[str]:
    """Each `lbipam.cilium.io/…` annotation rewritten as Cilium 1.15's `io.cilium/lb-ipam-…`;
    the Services rewritten. Cilium 1.15 reads only the latter: a pair sharing by the former
    splits on its return, and the one it splits off may take the address of a Service Cilium
    has not read yet, which then moves in turn (seen: a requested pair left with none)."""
    rewritten = []
    for service in core.list_namespaced_service(namespace).items:
        asked = service.metadata.annotations or {}
        renames = {IPS_116: IPS, SHARING_KEY_116: SHARING_KEY}
        patch = {old: None for old in renames if old in asked}
        patch.update({renames[old]: asked[old] for old in patch})
        if patch:
            body = {"metadata": {"annotations": patch}}
            core.patch_namespaced_service(service.metadata.name, namespace, body)
            rewritten.append(service.metadata.name)
    return sorted(rewritten)


# The first run builds Cilium's operator from its module: 4 minutes here, its modules downloaded
# and the Go build cache warm from the control plane; far longer with a cold one.
@pytest.mark.timeout(3600)
def test_switching_from_cilium_and_back_moves_no_address(
    core: client.CoreV1Api,
    kubectl: Kubectl,
    control_plane: ControlPlane,
    operator_kubeconfig: Path,
    without_session_operator: None,
    cilium: CiliumOperator,
    namespace: str,
) -> None:
    main, gold, off = subnet(), subnet(), subnet()
    lbipam = OperatorProcess(
        control_plane, KUBECONFIG=str(operator_kubeconfig), LBIPAM_NAMESPACE=kit.SYSTEM
    )
    names: tuple[str, ...] = ()
    try:
        # 1. Cilium assigns 200 Services from its pools.
        cilium.start()
        wait_cilium_crd(kubectl)
        names = cilium_pools(kubectl, namespace, (main, gold, off))
        started = time.monotonic()
        # Those asking for an address first: Cilium hands out the lowest address of its smallest
        # free block, which a later request would find taken.
        services = [service_of(index, main) for index in range(SERVICES)]
        for asking in (True, False):
            for manifest in services:
                if (IPS in manifest["metadata"]["annotations"]) == asking:
                    create(core, namespace, manifest)
            before = settled(core, namespace, lambda s: bool(ingress_ips(s)), "given one by Cilium")
        cilium_did_as_asked(before, main, gold)
        held = {tuple(ips) for ips in before.values()}
        print(
            f"\nCilium: {len(before)} Services on {len(held)} addresses in "
            f"{time.monotonic() - started:.0f} s"
        )

        # 2. Stop Cilium; convert its pools from the cluster; apply them; start lbipam.
        cilium.stop()
        pools = convert_and_apply(control_plane, kubectl, names)
        a, gold_pool, off_pool = (pools[name]["spec"] for name in names)
        assert (a["allowFirstLastIPs"], gold_pool["allowFirstLastIPs"]) == (False, True)
        assert off_pool["disabled"] is True
        assert a["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
        lbipam.start()

        # 3. Nothing moved.
        after = settled(core, namespace, allocated_by_lbipam, "Allocated by lbipam")
        assert moved(before, after) == []
        print(f"Cilium -> lbipam: {len(moved(before, after))} of {len(before)} moved")

        # 4. New Services asking in Cilium's words (1.15's and 1.16's) get what they ask for.
        free, free_too = highest_free(main, after)[:2]
        add_services(
            core,
            namespace,
            {
                "n-static": ({IPS_116: free}, {}, 80),
                "n-static-115": ({IPS: free_too}, {}, 80),
                "n-joins": ({SHARING_KEY: "pair-1"}, {}, 8080),
                "n-gold": ({}, {"tier": "gold"}, 80),
                "n-pair-1": ({SHARING_KEY_116: "fresh"}, {}, 80),
                "n-pair-2": ({SHARING_KEY_116: "fresh"}, {}, 443),
                "n-disabled": ({IPS: f"{off}.10"}, {}, 80),
            },
        )
        assert wait_address(core, namespace, "n-static") == [free]
        assert wait_address(core, namespace, "n-static-115") == [free_too]
        assert wait_address(core, namespace, "n-joins") == after["s011"]
        assert wait_address(core, namespace, "n-gold")[0].startswith(f"{gold}.")
        fresh = wait_address(core, namespace, "n-pair-1")
        assert wait_address(core, namespace, "n-pair-2") == fresh
        reason = refused(core, namespace, "n-disabled")  # a disabled pool hands out nothing
        print(f"lbipam: a request in Cilium's disabled pool: {reason}")

        # 5. Released addresses are handed out again, to Services asking for them.
        core.delete_namespaced_service("s010", namespace)
        core.delete_namespaced_service("s005", namespace)
        add_services(
            core,
            namespace,
            {
                "n-reuses": ({IPS_116: f"{main}.201"}, {}, 80),
                "n-reuses-gold": ({IPS: after["s005"][0]}, {"tier": "gold"}, 80),
            },
        )
        assert wait_address(core, namespace, "n-reuses") == [f"{main}.201"]
        assert wait_address(core, namespace, "n-reuses-gold") == after["s005"]

        # 6. Back to Cilium, after docs/migration.md's step: 1.16's names rewritten to 1.15's.
        lbipam.stop()
        rewritten = in_cilium_115_names(core, namespace)
        assert rewritten == ["n-pair-1", "n-pair-2", "n-reuses", "n-static"]
        back_before = addresses(core, namespace)
        earlier = len(cilium.logs())
        cilium.start()
        wait_initialized(cilium, earlier)
        create(core, namespace, service_manifest("n-probe"))  # after every older one
        probe = wait_address(core, namespace, "n-probe")
        back_after = addresses(core, namespace)
        back_moved = moved(back_before, back_after)
        print(
            f"lbipam -> Cilium: {len(back_moved)} of {len(back_before)} moved; the probe got "
            f"{probe}; n-disabled still has {back_after['n-disabled']}"
        )
        assert back_moved == []
        assert back_after["n-disabled"] == []
        assert all(not ip.startswith(f"{off}.") for ips in back_after.values() for ip in ips)
    finally:
        lbipam.cleanup()
        cilium.stop()
        for name in names:
            kubectl("delete", "ippools.lbipam.io", name, "--wait=false", check=False)
            kubectl("delete", "ciliumloadbalancerippools.cilium.io", name, check=False)

"""A MetalLB or Cilium user switching to lbipam: pools converted, Services' annotations honoured.

The session operator runs with the default LBIPAM_FOREIGN_ANNOTATIONS (metallb,cilium).
MetalLB's CRDs come from its module's source, so `lbipam convert --from-cluster` reads a pool
as a user's cluster serves it; MetalLB's controller itself runs in test_from_metallb.py.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.controlplane import ControlPlane
from tests.kit import (
    REPO,
    Kubectl,
    Pools,
    create,
    ingress_ips,
    service_manifest,
    subnet,
    wait_address,
    wait_reason,
    wait_service,
)
from tests.peers import install_metallb_crds


@pytest.fixture(scope="module")
def metallb_crd(kubectl: Kubectl, control_plane: ControlPlane) -> None:
    install_metallb_crds(kubectl, control_plane)


def wait_addresses(core: client.CoreV1Api, namespace: str, name: str, ips: list[str]) -> None:
    wait_service(core, namespace, name, lambda s: ingress_ips(s) == ips, what=f"addresses {ips}")


def lbipam_convert(plane: ControlPlane, *args: str, stdin: str | None = None) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "lbipam.cli", "convert", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=plane.env(),
        timeout=60,
    )


def test_the_converted_sample_pools_pass_the_ippool_crds_validation(
    control_plane: ControlPlane, kubectl: Kubectl, crds: None
) -> None:
    samples = REPO / "tests/unit/samples"
    done = lbipam_convert(
        control_plane,
        "-f",
        str(samples / "metallb.yaml"),
        "-f",
        "-",
        stdin=(samples / "cilium.yaml").read_text(),
    )
    assert done.returncode == 0, done.stderr

    applied = kubectl("apply", "--dry-run=server", "-f", "-", input=done.stdout)

    assert applied.stdout.count("ippool.lbipam.io/") == 10, applied.stdout


def test_a_metallb_users_pool_and_annotations_carry_over(
    core: client.CoreV1Api,
    kubectl: Kubectl,
    control_plane: ControlPlane,
    metallb_crd: None,
    pools: Pools,
    namespace: str,
) -> None:
    net, other = subnet(), subnet()
    name = f"mlb-{namespace}"
    metallb_pool = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "addresses": [f"{net}.0/24"],
            "serviceAllocation": {"namespaces": [namespace]},
        },
    }
    kubectl("apply", "-f", "-", input=yaml.safe_dump(metallb_pool))

    # Step 2 of docs/migration.md: convert what the cluster has, check, apply.
    done = lbipam_convert(control_plane, "--from-cluster", "--check")
    assert done.returncode == 0, done.stderr
    (ippool,) = [d for d in yaml.safe_load_all(done.stdout) if d["metadata"]["name"] == name]
    kubectl("apply", "-f", "-", input=yaml.safe_dump(ippool))
    pools.names.append(name)
    # A native pool that outranks it: only a Service naming the MetalLB pool stays in it.
    native = pools.create([f"{other}.0/24"], priority=10)
    for pool in (name, native):  # both in the operator's hands before any Service
        pools.status(pool, total="256")

    metallb = {
        "static": {"metallb.io/loadBalancerIPs": f"{net}.42"},
        "named": {"metallb.io/address-pool": name},
        "shared-a": {
            "metallb.universe.tf/loadBalancerIPs": f"{net}.50",
            "metallb.io/allow-shared-ip": "web",
        },
        "shared-b": {"metallb.io/allow-shared-ip": "web"},
        "plain": {},
    }
    for service, asked in metallb.items():
        port = 443 if service == "shared-b" else 80
        ports = [{"port": port, "protocol": "TCP"}]
        create(core, namespace, service_manifest(service, annotations=asked, ports=ports))

    assert wait_address(core, namespace, "static") == [f"{net}.42"]
    assert wait_address(core, namespace, "named")[0].startswith(f"{net}.")
    assert wait_address(core, namespace, "shared-a") == [f"{net}.50"]
    # Created a moment later, it may get an address of its own first; it then joins the group.
    wait_addresses(core, namespace, "shared-b", [f"{net}.50"])
    assert wait_address(core, namespace, "plain")[0].startswith(f"{other}.")


def test_a_cilium_users_annotations_carry_over_and_a_contradiction_is_refused(
    core: client.CoreV1Api, pools: Pools, namespace: str
) -> None:
    net = subnet()
    pools.create([f"{net}.0/24"])
    cilium = {
        "dns-udp": {"lbipam.cilium.io/ips": f"{net}.61", "io.cilium/lb-ipam-sharing-key": "dns"},
        "dns-tcp": {"lbipam.cilium.io/sharing-key": "dns"},
        "contradicting": {"lbipam.io/ips": f"{net}.70", "io.cilium/lb-ipam-ips": f"{net}.71"},
    }
    for service, asked in cilium.items():
        protocol = "UDP" if service == "dns-udp" else "TCP"
        ports = [{"port": 53, "protocol": protocol}]
        create(core, namespace, service_manifest(service, annotations=asked, ports=ports))
        if service == "dns-udp":
            # Created in the same second, dns-tcp sorts first and counts as the group's older
            # member: seen before dns-udp holds .61 (a CI run under load), it keeps its own.
            assert wait_address(core, namespace, service) == [f"{net}.61"]

    wait_addresses(core, namespace, "dns-tcp", [f"{net}.61"])
    condition = wait_reason(core, namespace, "contradicting", "InvalidRequest")
    assert f'lbipam.io/ips "{net}.70" and io.cilium/lb-ipam-ips "{net}.71"' in condition.message

"""The peers lbipam is measured against: MetalLB's controller and Cilium's operator.

Both are built from their Go modules by tests/peers.py (the switching stories run them too;
nothing of theirs lives in this repository) into the control plane's cache
(~/.cache/lbipam/controlplane/<peer>-<key>), keyed like it: a change of version, Go toolchain
or flags builds anew, anything else reuses the cache.

- MetalLB: `go install go.universe.tf/metallb/controller@v0.15.3`; its CRDs come from the
  module's `config/crd/bases`; one `IPAddressPool` 10.0.0.0/8 in `metallb-system`.
- Cilium: the generic operator of v1.15.19 (the newest release whose dependencies the module
  proxy serves here), built from the wrapper module in `tests/gobuild/cilium` with
  `-tags ipam_provider_operator`. It registers its CRDs itself; one `CiliumLoadBalancerIPPool`
  10.0.0.0/8. Its client is throttled to 5 QPS by default, so it runs as shipped and tuned
  (`--k8s-client-qps=200 --k8s-client-burst=400`).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bench.api import Api, ApiError, ingress_ips, service_manifest
from tests.controlplane import ControlPlane
from tests.controlplane.cluster import Process, free_port
from tests.peers import (
    METALLB_NAMESPACE,
    cilium_argv,
    cilium_operator,
    metallb_controller,
    metallb_crds,
)

CILIUM_POOLS = "/apis/cilium.io/v2alpha1/ciliumloadbalancerippools"
POOL_CIDR = "10.0.0.0/8"
READY_NAMESPACE = "bench-ready"  # the readiness probe's Service, outside the watched namespace


def build_all() -> None:
    metallb_controller()
    metallb_crds()
    cilium_operator()


def kubectl(plane: ControlPlane, *args: str) -> None:
    command = [str(plane.kubectl), f"--kubeconfig={plane.kubeconfig}", *args]
    subprocess.run(command, check=True, capture_output=True, text=True)


async def wait_addressed(api: Api, wait_s: float = 120) -> float:
    """Create a probe Service outside the watched namespace; seconds until it has an address."""
    await api.create_namespace(READY_NAMESPACE)
    path = f"/api/v1/namespaces/{READY_NAMESPACE}/services"
    await api.request("POST", path, service_manifest("ready"), ok=(409,))
    started = time.monotonic()
    while time.monotonic() - started < wait_s:
        if ingress_ips(await api.request("GET", f"{path}/ready")):
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise TimeoutError(f"the probe Service got no address in {wait_s}s")


Step = Callable[[ControlPlane, Api], Awaitable[None]]


async def _nothing(plane: ControlPlane, api: Api) -> None:
    return None


async def _metallb_resources(plane: ControlPlane, api: Api) -> None:
    crds = await asyncio.to_thread(metallb_crds)
    await asyncio.to_thread(kubectl, plane, "apply", "--server-side", "-f", str(crds))
    await asyncio.to_thread(plane.wait_established, "ipaddresspools.metallb.io")
    await api.create_namespace(METALLB_NAMESPACE)
    pool = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "bench", "namespace": METALLB_NAMESPACE},
        "spec": {"addresses": [POOL_CIDR]},
    }
    path = f"/apis/metallb.io/v1beta1/namespaces/{METALLB_NAMESPACE}/ipaddresspools"
    await api.request("POST", path, pool)


async def _cilium_pool(plane: ControlPlane, api: Api) -> None:
    # Cilium's operator registers its CRDs itself, after its start.
    await asyncio.to_thread(plane.wait_established, "ciliumloadbalancerippools.cilium.io", 120)
    pool = {
        "apiVersion": "cilium.io/v2alpha1",
        "kind": "CiliumLoadBalancerIPPool",
        "metadata": {"name": "bench"},
        "spec": {"blocks": [{"cidr": POOL_CIDR}]},
    }
    try:
        await api.request("POST", CILIUM_POOLS, pool)
    except ApiError as error:
        if error.status != 409:
            raise


def _metallb_argv(plane: ControlPlane) -> list[str]:
    return [
        str(metallb_controller()),
        "--webhook-mode=disabled",
        "--disable-cert-rotation",
        f"--namespace={METALLB_NAMESPACE}",
        f"--port={free_port()}",  # its metrics; the default 7472 may be taken on a shared host
        "--log-level=info",
    ]


def _cilium_argv(*tuning: str) -> Callable[[ControlPlane], list[str]]:
    return lambda plane: cilium_argv(plane, *tuning)


@dataclass(frozen=True)
class Peer:
    """How to run one peer on a fresh control plane."""

    key: str  # as named on the command line and in the JSON
    label: str  # as named in the table
    argv: Callable[[ControlPlane], list[str]]
    before: Step  # CRDs and pool that must exist before it starts
    after: Step  # what it needs once running (a pool of CRDs it registers itself)
    wait_s: float | None = None  # cap on waiting for the last address (a throttled peer)


PEERS = {
    peer.key: peer
    for peer in (
        Peer("metallb", "MetalLB", _metallb_argv, _metallb_resources, _nothing),
        Peer(
            "cilium-tuned",
            "Cilium, tuned",
            _cilium_argv("--k8s-client-qps=200", "--k8s-client-burst=400"),
            _nothing,
            _cilium_pool,
        ),
        Peer("cilium", "Cilium, as shipped", _cilium_argv(), _nothing, _cilium_pool, 120.0),
    )
}


class PeerProcess:
    """One peer's controller on one control plane, logging into the plane's folder."""

    def __init__(self, peer: Peer, plane: ControlPlane) -> None:
        self.peer = peer
        self.plane = plane
        self.process = Process(peer.key, peer.argv(plane), plane.root, env=plane.env())

    @property
    def pid(self) -> int | None:
        return self.process.popen.pid if self.process.popen is not None else None

    async def start(self, api: Api) -> None:
        await self.peer.before(self.plane, api)
        await asyncio.to_thread(self.process.start)
        try:
            await self.peer.after(self.plane, api)
        except Exception as error:
            raise RuntimeError(
                f"{self.peer.label} did not start:\n{self.process.tail()}"
            ) from error

    def check(self) -> None:
        if not self.process.running():
            raise RuntimeError(f"{self.peer.label} exited:\n{self.process.tail()}")

    def cleanup(self) -> None:
        self.process.stop()

"""What the data-plane tests ask of a Service: its paths in, and what answered on each."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client

from tests.dataplane.cluster import POD_PORT, DataPlane, Pod
from tests.dataplane.fabric import Host
from tests.dataplane.tcp import REFUSED, SILENT, probe_all
from tests.kit import Pools, ingress_ips, service_manifest, wait_service

SERVICE_PORT = 80
_blocks = itertools.count(1)

# The three ways into a backend from outside the cluster.
LB, NODE_PORT, POD_IP = "LB IP", "NodePort", "pod IP"


class LbBlock:
    """LB addresses (both families) no other test uses."""

    def __init__(self) -> None:
        self.n = next(_blocks)

    def address(self, family: int, host: int) -> str:
        return f"198.19.{self.n}.{host}" if family == 4 else f"2001:db8:ff:{self.n:x}::{host:x}"

    def pool(self, pools: Pools) -> str:
        return pools.create([f"198.19.{self.n}.0/28", f"2001:db8:ff:{self.n:x}::/124"])


def lb_pool(pools: Pools) -> str:
    return LbBlock().pool(pools)


def lb_service(name: str, *, ranges: list[str] | None = None, **spec: Any) -> dict[str, Any]:
    """A dual-stack LoadBalancer Service on port 80 → 8080 with node ports, ETP Local unless set."""
    spec.setdefault("externalTrafficPolicy", "Local")
    if ranges is not None:
        spec["loadBalancerSourceRanges"] = ranges
    return service_manifest(
        name,
        ports=[{"port": SERVICE_PORT, "targetPort": spec.pop("targetPort", POD_PORT)}],
        allocateLoadBalancerNodePorts=True,
        ipFamilyPolicy="RequireDualStack",
        ipFamilies=["IPv4", "IPv6"],
        **spec,
    )


def wait_addresses(core: client.CoreV1Api, namespace: str, name: str) -> dict[int, str]:
    """The Service's LB address per family (4, 6), once lbipam has written both."""
    service = wait_service(
        core, namespace, name, lambda s: len(ingress_ips(s)) == 2, what="both addresses"
    )
    return {6 if ":" in ip else 4: ip for ip in ingress_ips(service)}


def paths(
    core: client.CoreV1Api,
    namespace: str,
    name: str,
    pod: Pod,
    *,
    family: int = 4,
    node: Host | None = None,
) -> dict[str, tuple[str, int]]:
    """Address and port of each path in; the node port on `node` (default: the pod's node)."""
    service = core.read_namespaced_service(name, namespace)
    entry = node or pod.node.net
    found = {
        NODE_PORT: (entry.address(family), service.spec.ports[0].node_port),
        POD_IP: (pod.host.address(family), POD_PORT),
    }
    for ip in ingress_ips(service):
        if (":" in ip) == (family == 6):
            found[LB] = (ip, SERVICE_PORT)
    return found


def probe_paths(
    dataplane: DataPlane, client_ns: Host, found: dict[str, tuple[str, int]]
) -> dict[str, str]:
    """What `client_ns` got on each path: a pod's name, or REFUSED / SILENT."""
    return probe_all({path: (client_ns.netns, *target) for path, target in found.items()})


def answered(result: str) -> bool:
    return result not in (REFUSED, SILENT)


def until(
    check: Callable[[], dict[str, str]], wanted: Callable[[dict[str, str]], bool], timeout: float
) -> tuple[float, dict[str, str]]:
    """Probe until `wanted` holds; returns the seconds it took and the last results."""
    started = time.monotonic()
    while True:
        results = check()
        elapsed = time.monotonic() - started
        if wanted(results) or elapsed > timeout:
            return elapsed, results

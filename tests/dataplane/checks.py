"""What the data-plane tests ask of a Service: its paths in, and what answered on each."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from tests.dataplane.cluster import POD_PORT, DataPlane, Pod
from tests.dataplane.fabric import Host
from tests.dataplane.tcp import REFUSED, SILENT, probe_all
from tests.kit import Pools, create, ingress_ips, service_manifest, wait_policy, wait_service

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


def lb_service(
    name: str,
    *,
    ranges: list[str] | None = None,
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A dual-stack LoadBalancer Service on port 80 → 8080 with node ports, ETP Local unless set."""
    spec.setdefault("externalTrafficPolicy", "Local")
    if ranges is not None:
        spec["loadBalancerSourceRanges"] = ranges
    return service_manifest(
        name,
        annotations=annotations,
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


INSIDE = ["198.18.2.0/24", "2001:db8:2::/64"]  # where `DataPlane.inside` lives
OUTSIDE = ["198.18.3.0/24", "2001:db8:3::/64"]  # where `DataPlane.outside` lives


@dataclass
class Report:
    """What the packets showed and how long things took, printed after the session."""

    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    timings: list[tuple[str, float]] = field(default_factory=list)


REPORT = Report()


def shown(result: str) -> str:
    return f"answered ({result})" if answered(result) else result


def expect(
    dataplane: DataPlane,
    who: Host,
    found: dict[str, tuple[str, int]],
    admitted: dict[str, bool],
    scenario: str,
    timeout: float = 30,
) -> None:
    """Probe until each path admits or refuses `who` as `admitted` says; record what was seen."""
    _, seen = until(
        lambda: probe_paths(dataplane, who, found),
        lambda r: all(answered(r[p]) == admitted[p] for p in found),
        timeout,
    )
    for path in found:
        wanted = "answered" if admitted[path] else "refused or dropped"
        REPORT.rows.append((path, scenario, wanted, shown(seen[path])))
    assert {p: answered(r) for p, r in seen.items()} == admitted, (seen, dataplane.logs())


def time_until(
    probes: dict[str, tuple[Host, str, int]], admitted: dict[str, bool], timeout: float = 60
) -> dict[str, float]:
    """Seconds (from now) until each probe first shows its expected outcome.

    Probes wait less than TCP's first SYN retransmission (1 s), so each sends a single packet:
    an admitted one is timed when its answer arrives, a refused one when it was sent.
    """
    started = time.monotonic()
    first: dict[str, float] = {}
    while len(first) < len(probes) and time.monotonic() - started < timeout:
        sent = time.monotonic() - started
        pending = {k: (h.netns, a, p) for k, (h, a, p) in probes.items() if k not in first}
        for key, result in probe_all(pending, timeout=0.5).items():
            if answered(result) and admitted[key]:
                first[key] = time.monotonic() - started
            elif not answered(result) and not admitted[key]:
                first[key] = sent
    assert set(first) == set(probes), f"never as expected: {set(probes) - set(first)}"
    return first


@dataclass
class Backend:
    """A Service "web" and its pod "web-0" in one test's namespace, as the tests probe them."""

    core: client.CoreV1Api
    networking: client.NetworkingV1Api
    dataplane: DataPlane
    namespace: str
    pod: Pod
    name: str = "web"

    def paths(self, family: int = 4, node: Host | None = None) -> dict[str, tuple[str, int]]:
        return paths(self.core, self.namespace, self.name, self.pod, family=family, node=node)

    def edit(self, **spec: Any) -> None:
        self.core.patch_namespaced_service(self.name, self.namespace, {"spec": spec})

    def policy(self, check: Callable[[dict[str, Any]], bool] = bool) -> dict[str, Any]:
        return wait_policy(self.networking, self.namespace, f"lbipam-{self.name}", check)

    def expect(
        self, who: Host, found: dict[str, tuple[str, int]], admitted: dict[str, bool], scenario: str
    ) -> None:
        expect(self.dataplane, who, found, admitted, scenario)

    def time_swap(self, found: dict[str, tuple[str, int]], since: str) -> None:
        """Record how long (from now) until the outside client gets in and the inside one is
        refused on each path: the ranges were just swapped."""
        probes = {
            **{f"admitted on {p}": (self.dataplane.outside, *t) for p, t in found.items()},
            **{f"refused on {p}": (self.dataplane.inside, *t) for p, t in found.items()},
        }
        took = time_until(probes, {key: key.startswith("admitted") for key in probes})
        for key, seconds in sorted(took.items()):
            REPORT.timings.append((f"{since} → first packet {key}", seconds))


def serve(
    core: client.CoreV1Api,
    networking: client.NetworkingV1Api,
    dataplane: DataPlane,
    pools: Pools,
    namespace: str,
    **spec: Any,
) -> Backend:
    """Pod "web-0" on node 0 behind Service "web" (`lb_service(**spec)`), addressed and ready."""
    pod = dataplane.add_pod(namespace, "web-0", {"app": "web"})
    lb_pool(pools)
    create(core, namespace, lb_service("web", **spec))
    wait_addresses(core, namespace, "web")
    dataplane.endpoints_ready(namespace, "web")
    return Backend(core, networking, dataplane, namespace, pod)

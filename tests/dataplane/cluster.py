"""Nodes and pods as the API server sees them, backed by the namespaces of `fabric`.

There is no kubelet: the kit writes what a kubelet would (Node addresses, Pod status through the
status subresource), and kube-controller-manager's EndpointSlice controller does the rest.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.controlplane import ControlPlane
from tests.controlplane.cluster import Process
from tests.dataplane import daemons
from tests.dataplane.fabric import Fabric, Host, NodeNet
from tests.dataplane.tcp import Server, api_relay, name_server
from tests.kit import eventually

# Every pod answers on both; only the first is what the tests' Services target.
POD_PORT, POD_PORT_NAME = 8080, "web"
OTHER_PORT, OTHER_PORT_NAME = 9090, "metrics"


@dataclass
class Node:
    name: str
    net: NodeNet
    folder: Path
    kubeconfig: Path
    relay: Server
    kube_proxy: Process
    kube_router: Process


@dataclass
class Pod:
    namespace: str
    name: str
    node: Node
    host: Host
    servers: tuple[Server, ...]

    @property
    def ipv4(self) -> str:
        return self.host.ipv4

    @property
    def ipv6(self) -> str:
        return self.host.ipv6


class DataPlane:
    """Node namespaces with kube-proxy and kube-router, clients outside, pods on demand."""

    def __init__(self, plane: ControlPlane, core: client.CoreV1Api, nodes: int = 2) -> None:
        self.plane = plane
        self.core = core
        self.folder = Path(tempfile.mkdtemp(prefix="lbipam-dataplane-"))
        self.fabric = Fabric()
        self.nodes: list[Node] = []
        self.pods: list[Pod] = []
        try:
            # In 198.18.2.0/24 and 2001:db8:2::/64, the ranges tests allow; the other is outside.
            self.inside = self.fabric.add_client("in", 2)
            self.outside = self.fabric.add_client("out", 3)
            for _ in range(nodes):
                self._add_node()
        except BaseException:
            self.close()
            raise

    def _add_node(self) -> None:
        net = self.fabric.add_node()
        name = f"dp-node-{net.index}"
        folder = self.folder / name
        folder.mkdir()
        self._register_node(name, net)
        relay = api_relay(net.netns, daemons.RELAY_PORT, ("127.0.0.1", self.plane.api_port))
        kubeconfig = daemons.node_kubeconfig(self.plane.kubeconfig, folder)
        node = Node(
            name,
            net,
            folder,
            kubeconfig,
            relay,
            daemons.kube_proxy(net.netns, name, kubeconfig, folder),
            daemons.kube_router(net.netns, name, kubeconfig, folder),
        )
        self.nodes.append(node)
        # kube-router puts its jumps first in INPUT/FORWARD/OUTPUT only when it starts; started
        # before kube-proxy, kube-proxy's accept of SNAT-marked traffic would come first and let
        # such traffic past every policy.
        node.kube_proxy.start()
        daemons.wait_for_chain(net.netns, "KUBE-SERVICES")
        self.start_kube_router(node)

    def start_kube_router(self, node: Node) -> None:
        node.kube_router.start()
        daemons.wait_for_chain(node.net.netns, "KUBE-ROUTER-FORWARD")
        daemons.wait_for_chain(node.net.netns, "KUBE-ROUTER-FORWARD", family=6)

    def _register_node(self, name: str, net: NodeNet) -> None:
        with contextlib.suppress(client.ApiException):
            self.core.delete_node(name)  # a previous session's Node in a reused control plane
        self.core.create_node(
            {
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                "spec": {"podCIDRs": [net.pod_cidr_v4, net.pod_cidr_v6]},
            }
        )
        status = {
            "addresses": [
                {"type": "InternalIP", "address": net.ipv4},
                {"type": "InternalIP", "address": net.ipv6},
                {"type": "Hostname", "address": name},
            ],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        }
        self.core.patch_node_status(name, {"status": status})

    def add_pod(self, namespace: str, name: str, labels: dict[str, str], node: int = 0) -> Pod:
        """A running, ready pod on `node` that answers its name on ports "web" and "metrics"."""
        host_node = self.nodes[node]
        host = self.fabric.add_pod(host_node.net, f"{namespace}-{name}")
        servers = tuple(name_server(host.netns, port, name) for port in (POD_PORT, OTHER_PORT))
        pod = Pod(namespace, name, host_node, host, servers)
        self.pods.append(pod)
        manifest = {
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "nodeName": host_node.name,
                "automountServiceAccountToken": False,
                "containers": [
                    {
                        "name": "app",
                        "image": "name-server",
                        "ports": [
                            {"name": POD_PORT_NAME, "containerPort": POD_PORT},
                            {"name": OTHER_PORT_NAME, "containerPort": OTHER_PORT},
                        ],
                    }
                ],
            },
        }
        # The namespace's default ServiceAccount, which admission wants, may not exist yet.
        eventually(lambda: self._create_pod(namespace, manifest), timeout=30, what="pod created")
        self.core.patch_namespaced_pod_status(name, namespace, {"status": _running(pod)})
        return pod

    def _create_pod(self, namespace: str, manifest: dict[str, Any]) -> bool:
        try:
            self.core.create_namespaced_pod(namespace, manifest)
        except client.ApiException as error:
            if error.status == 403 and "serviceaccount" in str(error.body):
                return False
            raise
        return True

    def endpoints_ready(self, namespace: str, service: str, count: int = 1) -> None:
        """Wait until kube-controller-manager published `count` ready endpoints per family."""
        discovery = client.DiscoveryV1Api(self.core.api_client)

        def ready() -> bool:
            slices = discovery.list_namespaced_endpoint_slice(
                namespace, label_selector=f"kubernetes.io/service-name={service}"
            ).items
            by_family: dict[str, int] = {}
            for found in slices:
                ready = [e for e in found.endpoints or [] if e.conditions.ready]
                by_family[found.address_type] = by_family.get(found.address_type, 0) + len(ready)
            return bool(by_family) and all(n >= count for n in by_family.values())

        eventually(ready, timeout=30, what=f"EndpointSlices of {namespace}/{service}")

    def remove_pods(self, namespace: str | None = None) -> None:
        """Remove the pods of `namespace` (all pods when None): objects, servers, namespaces."""
        for pod in [p for p in self.pods if namespace in (None, p.namespace)]:
            # No kubelet will ever confirm a graceful deletion: the pod (and with it its
            # namespace) would stay Terminating for good.
            with contextlib.suppress(client.ApiException):
                self.core.delete_namespaced_pod(pod.name, pod.namespace, grace_period_seconds=0)
            for server in pod.servers:
                server.close()
            self.fabric.remove(pod.host.netns)
            self.pods.remove(pod)

    def close(self) -> None:
        self.remove_pods()
        for node in self.nodes:
            node.kube_router.stop()
            node.kube_proxy.stop()
            node.relay.close()
            with contextlib.suppress(client.ApiException):
                self.core.delete_node(node.name)
        self.fabric.delete()
        shutil.rmtree(self.folder, ignore_errors=True)

    def logs(self) -> str:
        """The tails of every daemon's log, for failure messages."""
        parts = []
        for node in self.nodes:
            for process in (node.kube_proxy, node.kube_router):
                parts.append(f"--- {node.name} {process.name}\n{process.tail(15)}")
        return "\n".join(parts)


def _running(pod: Pod) -> dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    ready = [
        {"type": kind, "status": "True", "lastTransitionTime": now}
        for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
    ]
    return {
        "phase": "Running",
        "conditions": ready,
        "hostIP": pod.node.net.ipv4,
        "hostIPs": [{"ip": pod.node.net.ipv4}, {"ip": pod.node.net.ipv6}],
        "podIP": pod.ipv4,
        "podIPs": [{"ip": pod.ipv4}, {"ip": pod.ipv6}],
        "startTime": now,
    }

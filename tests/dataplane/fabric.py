"""The test network: a router namespace ("lan"), node namespaces on its bridge, client and pod
namespaces. Addresses come only from 198.18.0.0/15 and 2001:db8::/32, and every route covers only
those ranges, so no packet can leave the namespaces.

    client-in  198.18.2.10 ─┐                        ┌─ node-0 198.18.1.10 ── pods 198.18.16.0/24
    client-out 198.18.3.10 ─┼─ lan (router, bridge) ─┤
                            ┘   LB range → a node    └─ node-1 198.18.1.11 ── pods 198.18.17.0/24
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from tests.dataplane.netns import Netns, veth

ALL_V4, ALL_V6 = "198.18.0.0/15", "2001:db8::/32"
LB_V4, LB_V6 = "198.19.0.0/16", "2001:db8:ff::/48"  # where test pools take Service addresses
_FORWARDING = {
    "net__ipv4__ip_forward": "1",
    "net__ipv6__conf__all__forwarding": "1",
    # Replies of Services may come back on another path than the request went (DNAT, two nodes).
    "net__ipv4__conf__all__rp_filter": "0",
    "net__ipv4__conf__default__rp_filter": "0",
}


@dataclass
class Host:
    """A namespace with one address per family."""

    netns: Netns
    ipv4: str
    ipv6: str

    def address(self, family: int) -> str:
        return self.ipv4 if family == 4 else self.ipv6


@dataclass
class NodeNet(Host):
    index: int
    pod_cidr_v4: str
    pod_cidr_v6: str
    pods: int = field(default=0)

    @property
    def gateway_v4(self) -> str:
        return str(ipaddress.ip_network(self.pod_cidr_v4)[1])

    @property
    def gateway_v6(self) -> str:
        return str(ipaddress.ip_network(self.pod_cidr_v6)[1])


class Fabric:
    """Builds the namespaces and links; `delete` removes all of them."""

    def __init__(self) -> None:
        self.made: list[Netns] = []
        self.lan = self._netns("lan")
        self.lan.sysctl(**_FORWARDING)
        self.lan.ip("link", "add", "br0", "type", "bridge")
        self.lan.ip("link", "set", "br0", "up")
        self._address(self.lan, "br0", "198.18.1.1/24", "2001:db8:1::1/64")
        self.nodes: list[NodeNet] = []

    def _netns(self, role: str) -> Netns:
        made = Netns(role)
        self.made.append(made)
        return made

    @staticmethod
    def _address(netns: Netns, dev: str, v4: str, v6: str) -> None:
        netns.ip("addr", "add", v4, "dev", dev)
        netns.ip("-6", "addr", "add", v6, "dev", dev, "nodad")

    @staticmethod
    def _routes(netns: Netns, via_v4: str, via_v6: str, dev: str = "eth0") -> None:
        netns.ip("route", "add", ALL_V4, "via", via_v4, "dev", dev, "onlink")
        netns.ip("-6", "route", "add", ALL_V6, "via", via_v6, "dev", dev, "onlink")

    def add_node(self) -> NodeNet:
        index = len(self.nodes)
        netns = self._netns(f"node{index}")
        netns.sysctl(**_FORWARDING)
        veth(self.lan, f"n{index}", netns, "eth0")
        self.lan.ip("link", "set", f"n{index}", "master", "br0")
        node = NodeNet(
            netns,
            f"198.18.1.{10 + index}",
            f"2001:db8:1::{10 + index:x}",
            index,
            f"198.18.{16 + index}.0/24",
            f"2001:db8:10:{index:x}::/64",
        )
        self._address(netns, "eth0", f"{node.ipv4}/24", f"{node.ipv6}/64")
        self._routes(netns, "198.18.1.1", "2001:db8:1::1")
        # An LB address kube-proxy does not (or no longer) serve must not bounce back to the lan.
        netns.ip("route", "add", "unreachable", LB_V4)
        netns.ip("-6", "route", "add", "unreachable", LB_V6)
        self.lan.ip("route", "add", node.pod_cidr_v4, "via", node.ipv4)
        self.lan.ip("-6", "route", "add", node.pod_cidr_v6, "via", node.ipv6)
        for other in self.nodes:
            # Nodes reach each other's pods directly, as a flat pod network does.
            netns.ip("route", "add", other.pod_cidr_v4, "via", other.ipv4)
            netns.ip("-6", "route", "add", other.pod_cidr_v6, "via", other.ipv6)
            other.netns.ip("route", "add", node.pod_cidr_v4, "via", node.ipv4)
            other.netns.ip("-6", "route", "add", node.pod_cidr_v6, "via", node.ipv6)
        self.nodes.append(node)
        if index == 0:
            self.route_lb_via(node)
        return node

    def route_lb_via(self, node: NodeNet, address: str | None = None) -> None:
        """Send the whole LB range (or one address of it) to `node`, as an announcement would."""
        if address is None:
            self.lan.ip("route", "replace", LB_V4, "via", node.ipv4)
            self.lan.ip("-6", "route", "replace", LB_V6, "via", node.ipv6)
        elif ":" in address:
            self.lan.ip("-6", "route", "replace", f"{address}/128", "via", node.ipv6)
        else:
            self.lan.ip("route", "replace", f"{address}/32", "via", node.ipv4)

    def add_client(self, role: str, subnet: int) -> Host:
        """A client outside the cluster in 198.18.`subnet`.0/24 and 2001:db8:`subnet`::/64."""
        netns = self._netns(role)
        veth(self.lan, f"c{subnet}", netns, "eth0")
        self._address(self.lan, f"c{subnet}", f"198.18.{subnet}.1/24", f"2001:db8:{subnet:x}::1/64")
        client = Host(netns, f"198.18.{subnet}.10", f"2001:db8:{subnet:x}::10")
        self._address(netns, "eth0", f"{client.ipv4}/24", f"{client.ipv6}/64")
        self._routes(netns, f"198.18.{subnet}.1", f"2001:db8:{subnet:x}::1")
        return client

    def add_pod(self, node: NodeNet, role: str) -> Host:
        """A pod namespace wired to `node` by a routed veth (no bridge), one address per family."""
        node.pods += 1
        slot = node.pods
        netns = self._netns(role)
        host_side = f"p{slot}"
        veth(node.netns, host_side, netns, "eth0")
        pod = Host(
            netns,
            str(ipaddress.ip_network(node.pod_cidr_v4)[10 + slot]),
            str(ipaddress.ip_network(node.pod_cidr_v6)[10 + slot]),
        )
        node.netns.ip("addr", "add", f"{node.gateway_v4}/32", "dev", host_side)
        node.netns.ip("-6", "addr", "add", f"{node.gateway_v6}/128", "dev", host_side, "nodad")
        node.netns.ip("route", "add", f"{pod.ipv4}/32", "dev", host_side)
        node.netns.ip("-6", "route", "add", f"{pod.ipv6}/128", "dev", host_side)
        self._address(netns, "eth0", f"{pod.ipv4}/32", f"{pod.ipv6}/128")
        netns.ip("route", "add", node.gateway_v4, "dev", "eth0", "scope", "link")
        netns.ip("-6", "route", "add", node.gateway_v6, "dev", "eth0")
        self._routes(netns, node.gateway_v4, node.gateway_v6)
        return pod

    def remove(self, netns: Netns) -> None:
        netns.delete()
        self.made.remove(netns)

    def delete(self) -> None:
        for netns in reversed(self.made):
            netns.delete()
        self.made.clear()

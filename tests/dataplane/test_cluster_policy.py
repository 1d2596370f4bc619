"""externalTrafficPolicy: Cluster on two nodes: what source ranges can and cannot do.

Traffic entering on a node without the pod is SNATed to that node's address before it reaches
the pod's node, so a NetworkPolicy admitting only the ranges dropped allowed clients there.
lbipam therefore writes no policy for such a Service and warns; kube-proxy still filters the LB IP.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.dataplane.checks import INSIDE, LB, NODE_PORT, POD_IP, Backend, wait_addresses
from tests.dataplane.cluster import DataPlane
from tests.kit import policy, wait_event

pytestmark = pytest.mark.dataplane


def test_allowed_clients_get_in_through_either_node_and_the_user_is_told_what_is_not_enforced(
    serving: Callable[..., Backend],
    pods: DataPlane,
) -> None:
    web = serving(ranges=INSIDE, externalTrafficPolicy="Cluster")
    address = wait_addresses(web.core, web.namespace, "web")

    warning = wait_event(web.core, web.namespace, "web", "SourceRangesNotEnforceable")
    assert "kube-proxy still filters the LoadBalancer IP" in warning.message
    assert "node ports and the pod IPs are open" in warning.message
    assert policy(web.networking, web.namespace, "lbipam-web") is None

    for family in (4, 6):
        for entry in pods.nodes:
            pods.fabric.route_lb_via(entry.net, address[family])
            found = web.paths(family, node=entry.net)
            where = "pod's node" if entry is web.pod.node else "other node"
            scenario = f"ETP Cluster, entering on the {where}, IPv{family}"
            admitted = {LB: True, NODE_PORT: True, POD_IP: True}
            web.expect(pods.inside, found, admitted, f"{scenario}, in range")
            # Only the LB IP is filtered (by kube-proxy, before SNAT); the rest is not enforceable.
            admitted = {LB: False, NODE_PORT: True, POD_IP: True}
            web.expect(pods.outside, found, admitted, f"{scenario}, out of range")

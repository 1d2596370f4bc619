"""externalTrafficPolicy: Cluster on two nodes: what source ranges can and cannot do.

Traffic entering on either node is SNATed to a node address before it reaches the pod, so a
NetworkPolicy admitting only the ranges would drop the allowed clients too. lbipam therefore
writes no policy for such a Service and warns; kube-proxy still filters the LB IP.
"""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.dataplane.checks import (
    INSIDE,
    LB,
    NODE_PORT,
    POD_IP,
    expect,
    lb_pool,
    lb_service,
    paths,
    wait_addresses,
)
from tests.dataplane.cluster import DataPlane
from tests.kit import Pools, create, policy, wait_event

pytestmark = pytest.mark.dataplane


def test_allowed_clients_get_in_through_either_node_and_the_user_is_told_what_is_not_enforced(
    core: client.CoreV1Api,
    networking: client.NetworkingV1Api,
    pods: DataPlane,
    pools: Pools,
    namespace: str,
) -> None:
    pod = pods.add_pod(namespace, "web-0", {"app": "web"}, node=0)
    lb_pool(pools)
    create(core, namespace, lb_service("web", ranges=INSIDE, externalTrafficPolicy="Cluster"))
    address = wait_addresses(core, namespace, "web")
    pods.endpoints_ready(namespace, "web")

    warning = wait_event(core, namespace, "web", "SourceRangesNotEnforceable")
    assert "kube-proxy" in warning.message and "node port" in warning.message, warning.message
    assert policy(networking, namespace, "lbipam-web") is None

    for family in (4, 6):
        for entry in pods.nodes:
            pods.fabric.route_lb_via(entry.net, address[family])
            found = paths(core, namespace, "web", pod, family=family, node=entry.net)
            where = "pod's node" if entry is pod.node else "other node"
            scenario = f"ETP Cluster, entering on the {where}, IPv{family}"
            expect(
                pods,
                pods.inside,
                found,
                {LB: True, NODE_PORT: True, POD_IP: True},
                f"{scenario}, in range",
            )
            # Only the LB IP is filtered (by kube-proxy, before SNAT); the rest is not enforceable.
            expect(
                pods,
                pods.outside,
                found,
                {LB: False, NODE_PORT: True, POD_IP: True},
                f"{scenario}, out of range",
            )

"""A Service's address from lbipam carries packets to its pods, and only while it exists."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.dataplane.checks import (
    LB,
    NODE_PORT,
    POD_IP,
    SERVICE_PORT,
    LbBlock,
    answered,
    lb_service,
    paths,
    probe_paths,
    until,
    wait_addresses,
)
from tests.dataplane.cluster import DataPlane
from tests.dataplane.tcp import probe_all
from tests.kit import Pools, create

pytestmark = pytest.mark.dataplane


def test_a_client_reaches_the_pod_only_while_the_service_has_its_address(
    core: client.CoreV1Api, pods: DataPlane, pools: Pools, namespace: str
) -> None:
    block = LbBlock()
    wanted = {family: block.address(family, 5) for family in (4, 6)}
    pod = pods.add_pod(namespace, "web-0", {"app": "web"})
    service = lb_service("web")
    service["metadata"]["annotations"] = {"lbipam.io/ips": f"{wanted[4]},{wanted[6]}"}
    create(core, namespace, service)  # no pool holds the addresses yet: lbipam writes none
    pods.endpoints_ready(namespace, "web")

    before = probe_all({f: (pods.outside.netns, wanted[f], SERVICE_PORT) for f in (4, 6)})
    assert not any(answered(result) for result in before.values()), before

    block.pool(pools)
    assert wait_addresses(core, namespace, "web") == wanted
    found = {family: paths(core, namespace, "web", pod, family=family) for family in (4, 6)}
    for family in (4, 6):
        _, seen = until(
            lambda f=family: probe_paths(pods, pods.outside, found[f]),
            lambda r: all(answered(v) for v in r.values()),
            timeout=30,
        )
        assert seen == {LB: "web-0", NODE_PORT: "web-0", POD_IP: "web-0"}, pods.logs()

    core.delete_namespaced_service("web", namespace)

    for family in (4, 6):
        _, seen = until(
            lambda f=family: probe_paths(pods, pods.outside, found[f]),
            lambda r: not answered(r[LB]) and not answered(r[NODE_PORT]),
            timeout=30,
        )
        assert not answered(seen[LB]) and not answered(seen[NODE_PORT]), seen
        assert seen[POD_IP] == "web-0"  # the pod itself is still there

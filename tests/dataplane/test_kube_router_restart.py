"""The firewall restarts while policies exist: what is enforced meanwhile, and how soon after."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.dataplane.checks import INSIDE, NODE_PORT, OUTSIDE, POD_IP, REPORT, serve, time_until
from tests.dataplane.cluster import DataPlane
from tests.kit import Pools

pytestmark = pytest.mark.dataplane


def test_enforcement_holds_through_a_kube_router_restart_and_catches_up_with_edits(
    core: client.CoreV1Api,
    networking: client.NetworkingV1Api,
    pods: DataPlane,
    pools: Pools,
    namespace: str,
) -> None:
    web = serve(core, networking, pods, pools, namespace, ranges=INSIDE)
    web.policy()
    # The LB IP is kube-proxy's to filter; these two paths are the policy's alone.
    found = {path: web.paths()[path] for path in (NODE_PORT, POD_IP)}
    both = {NODE_PORT: True, POD_IP: True}
    neither = {NODE_PORT: False, POD_IP: False}
    web.expect(pods.outside, found, neither, "before the kube-router restart, out of range")

    node = web.pod.node
    node.kube_router.stop()
    web.expect(pods.outside, found, neither, "kube-router stopped, out of range")
    web.expect(pods.inside, found, both, "kube-router stopped, in range")

    web.edit(loadBalancerSourceRanges=OUTSIDE)
    web.policy(lambda p: p["spec"]["ingress"][0]["from"][0]["ipBlock"]["cidr"] == OUTSIDE[0])
    # Nothing applies the edited policy while kube-router is down: the old ranges hold.
    web.expect(pods.outside, found, neither, "kube-router stopped, ranges edited, newly in range")
    web.expect(pods.inside, found, both, "kube-router stopped, ranges edited, newly out of range")

    pods.start_kube_router(node)
    probes = {
        **{f"admitted on {p}": (pods.outside, *t) for p, t in found.items()},
        **{f"refused on {p}": (pods.inside, *t) for p, t in found.items()},
    }
    took = time_until(probes, {key: key.startswith("admitted") for key in probes})
    for key, seconds in sorted(took.items()):
        REPORT.timings.append((f"kube-router started → edited ranges {key}", seconds))
    web.expect(pods.outside, found, both, "kube-router restarted, newly in range")
    web.expect(pods.inside, found, neither, "kube-router restarted, newly out of range")

"""The firewall restarts while policies exist: what is enforced meanwhile, and how soon after."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.dataplane.checks import (
    INSIDE,
    NODE_PORT,
    OUTSIDE,
    POD_IP,
    Backend,
)
from tests.dataplane.cluster import DataPlane

pytestmark = pytest.mark.dataplane


def test_enforcement_holds_through_a_kube_router_restart_and_catches_up_with_edits(
    serving: Callable[..., Backend],
    pods: DataPlane,
) -> None:
    web = serving(ranges=INSIDE)
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
    web.time_swap(found, "kube-router started again, ranges edited while it was down")
    web.expect(pods.outside, found, both, "kube-router restarted, newly in range")
    web.expect(pods.inside, found, neither, "kube-router restarted, newly out of range")

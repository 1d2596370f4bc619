"""A Service whose targetPort is a name: the policy names the port, and kube-router admits the
ranges on exactly the port the pods give that name."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.dataplane.checks import INSIDE, LB, NODE_PORT, POD_IP, Backend
from tests.dataplane.cluster import OTHER_PORT, POD_PORT_NAME, DataPlane

pytestmark = pytest.mark.dataplane
OTHER = "pod IP, port the Service does not target"


def test_a_named_target_port_admits_the_ranges_on_that_port_only(
    serving: Callable[..., Backend],
    pods: DataPlane,
) -> None:
    web = serving(ranges=INSIDE, targetPort=POD_PORT_NAME)

    made = web.policy()
    assert [rule["ports"] for rule in made["spec"]["ingress"]] == [
        [{"port": POD_PORT_NAME, "protocol": "TCP"}]
    ] * 2

    for family in (4, 6):
        found = {**web.paths(family), OTHER: (web.pod.host.address(family), OTHER_PORT)}
        scenario = f"ETP Local, targetPort {POD_PORT_NAME!r}, IPv{family}"
        admitted = {LB: True, NODE_PORT: True, POD_IP: True, OTHER: False}
        web.expect(pods.inside, found, admitted, f"{scenario}, in range")
        refused = dict.fromkeys(found, False)
        web.expect(pods.outside, found, refused, f"{scenario}, out of range")

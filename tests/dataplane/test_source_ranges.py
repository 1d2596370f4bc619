"""loadBalancerSourceRanges with externalTrafficPolicy: Local, proven on every path in.

kube-proxy itself filters the LB IP (ipMode VIP); lbipam's NetworkPolicy, enforced here by
kube-router, is what closes the node port and the pod IPs.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.controlplane import ControlPlane
from tests.dataplane.checks import (
    INSIDE,
    LB,
    NODE_PORT,
    OUTSIDE,
    POD_IP,
    Backend,
)
from tests.dataplane.cluster import DataPlane
from tests.kit import wait_no_policy
from tests.operator_process import OperatorProcess

pytestmark = pytest.mark.dataplane
ALL = {LB: True, NODE_PORT: True, POD_IP: True}
NONE = {LB: False, NODE_PORT: False, POD_IP: False}


@pytest.fixture
def web(
    serving: Callable[..., Backend],
    pods: DataPlane,
) -> Backend:
    """Service "web" (ETP Local) restricted to INSIDE, its pod on node 0."""
    return serving(ranges=INSIDE)


def test_only_clients_inside_the_ranges_get_in_on_any_path(web: Backend, pods: DataPlane) -> None:
    web.policy()

    for family in (4, 6):
        found = web.paths(family)
        web.expect(pods.inside, found, ALL, f"ETP Local, lbipam policy, in range, IPv{family}")
        scenario = f"ETP Local, lbipam policy, out of range, IPv{family}"
        web.expect(pods.outside, found, NONE, scenario)


def test_without_lbipams_policy_kube_proxy_guards_only_the_lb_address(
    web: Backend, pods: DataPlane, operator: OperatorProcess, control_plane: ControlPlane
) -> None:
    operator.stop()
    off = OperatorProcess(control_plane, LBIPAM_SOURCE_RANGES="off").start()
    try:
        wait_no_policy(web.networking, web.namespace, "lbipam-web")
        for family in (4, 6):
            found = web.paths(family)
            open_paths = {LB: False, NODE_PORT: True, POD_IP: True}
            scenario = f"ETP Local, no policy, out of range, IPv{family}"
            web.expect(pods.outside, found, open_paths, scenario)
            web.expect(pods.inside, found, ALL, f"ETP Local, no policy, in range, IPv{family}")
    finally:
        off.cleanup()
        operator.start()


def test_edited_ranges_take_effect_and_removed_ranges_open_the_service(
    web: Backend, pods: DataPlane
) -> None:
    found = web.paths()
    web.expect(pods.inside, found, ALL, "ETP Local, before the edit, in range, IPv4")

    web.edit(loadBalancerSourceRanges=OUTSIDE)
    web.time_swap(found, "ranges edited")
    web.expect(pods.outside, found, ALL, "ETP Local, after the edit, now in range, IPv4")
    web.expect(pods.inside, found, NONE, "ETP Local, after the edit, now out of range, IPv4")

    web.edit(loadBalancerSourceRanges=None)
    wait_no_policy(web.networking, web.namespace, "lbipam-web")
    for family in (4, 6):
        found = web.paths(family)
        scenario = f"ETP Local, ranges removed, IPv{family}"
        web.expect(pods.inside, found, ALL, f"{scenario}, former in-range client")
        web.expect(pods.outside, found, ALL, f"{scenario}, former out-of-range client")


def test_a_policy_deleted_or_opened_by_hand_is_restored_and_enforced_again(
    web: Backend, pods: DataPlane
) -> None:
    original = web.policy()
    found = web.paths()

    # Admit everyone: an empty rule matches every source and port.
    web.networking.patch_namespaced_network_policy(
        "lbipam-web", web.namespace, {"spec": {"ingress": [{}]}}
    )
    web.policy(lambda p: p["spec"] == original["spec"])
    web.expect(pods.outside, found, NONE, "ETP Local, policy opened by hand, out of range, IPv4")
    web.expect(pods.inside, found, ALL, "ETP Local, policy opened by hand, in range, IPv4")

    web.networking.delete_namespaced_network_policy("lbipam-web", web.namespace)
    web.policy(lambda p: p["metadata"]["uid"] != original["metadata"]["uid"])
    web.expect(pods.outside, found, NONE, "ETP Local, policy deleted by hand, out of range, IPv4")
    web.expect(pods.inside, found, ALL, "ETP Local, policy deleted by hand, in range, IPv4")

"""loadBalancerSourceRanges with externalTrafficPolicy: Local, proven on every path in.

kube-proxy itself filters the LB IP (ipMode VIP); lbipam's NetworkPolicy, enforced here by
kube-router, is what closes the node port and the pod IPs.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from tests.controlplane import ControlPlane
from tests.dataplane.checks import (
    INSIDE,
    LB,
    NODE_PORT,
    OUTSIDE,
    POD_IP,
    REPORT,
    expect,
    lb_pool,
    lb_service,
    paths,
    time_until,
    wait_addresses,
)
from tests.dataplane.cluster import DataPlane, Pod
from tests.kit import Pools, create, wait_no_policy, wait_policy
from tests.operator_process import OperatorProcess

pytestmark = pytest.mark.dataplane
ALL = {LB: True, NODE_PORT: True, POD_IP: True}
NONE = {LB: False, NODE_PORT: False, POD_IP: False}


@pytest.fixture
def web(core: client.CoreV1Api, pods: DataPlane, pools: Pools, namespace: str) -> Iterator[Pod]:
    """A pod "web-0" on node 0 behind Service "web" (ETP Local) restricted to INSIDE."""
    pod = pods.add_pod(namespace, "web-0", {"app": "web"})
    lb_pool(pools)
    create(core, namespace, lb_service("web", ranges=INSIDE))
    wait_addresses(core, namespace, "web")
    pods.endpoints_ready(namespace, "web")
    yield pod


def test_only_clients_inside_the_ranges_get_in_on_any_path(
    core: client.CoreV1Api,
    networking: client.NetworkingV1Api,
    pods: DataPlane,
    web: Pod,
    namespace: str,
) -> None:
    wait_policy(networking, namespace, "lbipam-web")

    for family in (4, 6):
        found = paths(core, namespace, "web", web, family=family)
        expect(pods, pods.inside, found, ALL, f"ETP Local, lbipam policy, in range, IPv{family}")
        expect(
            pods, pods.outside, found, NONE, f"ETP Local, lbipam policy, out of range, IPv{family}"
        )


def test_without_lbipams_policy_kube_proxy_guards_only_the_lb_address(
    core: client.CoreV1Api,
    networking: client.NetworkingV1Api,
    pods: DataPlane,
    web: Pod,
    namespace: str,
    operator: OperatorProcess,
    control_plane: ControlPlane,
) -> None:
    operator.stop()
    off = OperatorProcess(control_plane, LBIPAM_SOURCE_RANGES="off").start()
    try:
        wait_no_policy(networking, namespace, "lbipam-web")
        for family in (4, 6):
            found = paths(core, namespace, "web", web, family=family)
            open_paths = {LB: False, NODE_PORT: True, POD_IP: True}
            scenario = f"ETP Local, no policy, out of range, IPv{family}"
            expect(pods, pods.outside, found, open_paths, scenario)
            expect(pods, pods.inside, found, ALL, f"ETP Local, no policy, in range, IPv{family}")
    finally:
        off.cleanup()
        operator.start()


def test_edited_ranges_take_effect_and_removed_ranges_open_the_service(
    core: client.CoreV1Api,
    networking: client.NetworkingV1Api,
    pods: DataPlane,
    web: Pod,
    namespace: str,
) -> None:
    found = paths(core, namespace, "web", web)
    expect(pods, pods.inside, found, ALL, "ETP Local, before the edit, in range, IPv4")

    core.patch_namespaced_service("web", namespace, {"spec": {"loadBalancerSourceRanges": OUTSIDE}})
    probes = {
        **{f"admitted {p}": (pods.outside, *t) for p, t in found.items()},
        **{f"refused {p}": (pods.inside, *t) for p, t in found.items()},
    }
    took = time_until(probes, {key: key.startswith("admitted") for key in probes})
    for key, seconds in sorted(took.items()):
        REPORT.timings.append((f"ranges edited → first packet {key}", seconds))
    expect(pods, pods.outside, found, ALL, "ETP Local, after the edit, now in range, IPv4")
    expect(pods, pods.inside, found, NONE, "ETP Local, after the edit, now out of range, IPv4")

    core.patch_namespaced_service("web", namespace, {"spec": {"loadBalancerSourceRanges": None}})
    wait_no_policy(networking, namespace, "lbipam-web")
    for family in (4, 6):
        found = paths(core, namespace, "web", web, family=family)
        scenario = f"ETP Local, ranges removed, IPv{family}"
        expect(pods, pods.inside, found, ALL, f"{scenario}, former in-range client")
        expect(pods, pods.outside, found, ALL, f"{scenario}, former out-of-range client")


def test_a_policy_deleted_or_opened_by_hand_is_restored_and_enforced_again(
    core: client.CoreV1Api,
    networking: client.NetworkingV1Api,
    pods: DataPlane,
    web: Pod,
    namespace: str,
) -> None:
    original = wait_policy(networking, namespace, "lbipam-web")
    found = paths(core, namespace, "web", web)

    # Admit everyone: an empty rule matches every source and port.
    networking.patch_namespaced_network_policy("lbipam-web", namespace, {"spec": {"ingress": [{}]}})
    wait_policy(networking, namespace, "lbipam-web", lambda p: p["spec"] == original["spec"])
    expect(pods, pods.outside, found, NONE, "ETP Local, policy opened by hand, out of range, IPv4")
    expect(pods, pods.inside, found, ALL, "ETP Local, policy opened by hand, in range, IPv4")

    networking.delete_namespaced_network_policy("lbipam-web", namespace)
    wait_policy(
        networking,
        namespace,
        "lbipam-web",
        lambda p: p["metadata"]["uid"] != original["metadata"]["uid"],
    )
    expect(pods, pods.outside, found, NONE, "ETP Local, policy deleted by hand, out of range, IPv4")
    expect(pods, pods.inside, found, ALL, "ETP Local, policy deleted by hand, in range, IPv4")

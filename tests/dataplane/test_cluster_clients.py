"""Pods of the cluster reach a source-restricted Service's pods unless the operator is told not
to let them (LBIPAM_SOURCE_RANGES_ALLOW_CLUSTER)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client

from tests.controlplane import ControlPlane
from tests.dataplane.checks import INSIDE, POD_IP, Backend
from tests.dataplane.cluster import DataPlane, Pod
from tests.operator_process import OperatorProcess

pytestmark = pytest.mark.dataplane


@pytest.fixture
def client_pod(core: client.CoreV1Api, pods: DataPlane) -> Iterator[Pod]:
    """A pod in a namespace of its own, on the node without the Service's pod."""
    name = f"c-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield pods.add_pod(name, "shop-ui", {"app": "shop-ui"}, node=1)
    finally:
        pods.remove_pods(name)
        core.delete_namespace(name)


def pod_path(web: Backend, family: int) -> dict[str, tuple[str, int]]:
    return {POD_IP: web.paths(family)[POD_IP]}


def test_pods_of_the_cluster_pass_unless_the_operator_says_otherwise(
    serving: Callable[..., Backend],
    pods: DataPlane,
    client_pod: Pod,
    operator: OperatorProcess,
    control_plane: ControlPlane,
) -> None:
    web = serving(ranges=INSIDE)
    web.policy()
    for family in (4, 6):
        scenario = f"ETP Local, pod of another namespace, ALLOW_CLUSTER=true, IPv{family}"
        web.expect(client_pod.host, pod_path(web, family), {POD_IP: True}, scenario)

    operator.stop()
    strict = OperatorProcess(control_plane, LBIPAM_SOURCE_RANGES_ALLOW_CLUSTER="false").start()
    try:
        web.policy(lambda p: len(p["spec"]["ingress"]) == 1)
        for family in (4, 6):
            scenario = f"ETP Local, pod of another namespace, ALLOW_CLUSTER=false, IPv{family}"
            web.expect(client_pod.host, pod_path(web, family), {POD_IP: False}, scenario)
            scenario = f"ETP Local, ALLOW_CLUSTER=false, in range, IPv{family}"
            web.expect(pods.inside, pod_path(web, family), {POD_IP: True}, scenario)
    finally:
        strict.cleanup()
        operator.start()
    web.policy(lambda p: len(p["spec"]["ingress"]) == 2)

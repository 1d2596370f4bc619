"""The control plane fails under the operator: the API server restarts, etcd forgets history."""

from __future__ import annotations

import signal

import pytest
from kubernetes import client, watch

from tests.controlplane import ControlPlane
from tests.faults.conftest import Case, compact_etcd
from tests.kit import Pools, subnet
from tests.operator_process import OperatorProcess

pytestmark = pytest.mark.faults


def test_an_api_server_restart_mid_burst_breaks_every_watch_and_moves_nobody(
    case: Case, pools: Pools, control_plane: ControlPlane, operator: OperatorProcess
) -> None:
    pools.create([f"{subnet()}.0/24"])
    burst = case.burst(creates=200)
    burst.wait_created(70)

    before = case.snapshot()
    control_plane.restart_apiserver()
    case.fault("kube-apiserver restarted, etcd kept: every watch broken mid-stream")

    assert case.converge(before)
    assert burst.retries > 0, "the burst never noticed the API server was down"
    operator.wait_ready()


def _gone(core: client.CoreV1Api, namespace: str, version: str) -> bool:
    """Whether a watch from `version` is refused with 410 Gone."""
    try:
        for event in watch.Watch().stream(
            core.list_namespaced_service, namespace, resource_version=version, timeout_seconds=2
        ):
            if event["type"] == "ERROR":
                return getattr(event["object"], "code", None) == 410 or "410" in str(event)
    except client.ApiException as error:
        return error.status == 410
    return False


def test_an_operator_whose_resource_version_was_compacted_away_relists_and_moves_nobody(
    case: Case,
    pools: Pools,
    namespace: str,
    control_plane: ControlPlane,
    operator: OperatorProcess,
    core: client.CoreV1Api,
) -> None:
    assert operator.popen is not None
    pools.create([f"{subnet()}.0/24"])
    burst = case.burst(creates=200)
    burst.wait_created(70)

    before = case.snapshot()
    seen = core.list_namespaced_service(namespace).metadata.resource_version
    operator.popen.send_signal(signal.SIGSTOP)  # its watches stop at what it has seen
    burst.wait_created(len(burst.created) + 20)
    revision = compact_etcd(control_plane)
    control_plane.restart_apiserver()  # the watch cache starts after the compaction too
    operator.popen.send_signal(signal.SIGCONT)
    case.fault(f"operator paused; etcd compacted at revision {revision}; API server restarted")

    assert _gone(core, namespace, seen), "a watch from the operator's version was not 410 Gone"
    assert case.converge(before)
    operator.wait_ready()

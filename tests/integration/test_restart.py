"""Restarts: the cluster is the record, so a restarted operator moves nobody."""

from __future__ import annotations

import signal
from collections import Counter

import pytest
from kubernetes import client

from tests.kit import (
    Pools,
    create,
    ingress_ips,
    our_condition,
    service_manifest,
    subnet,
    wait_address,
)
from tests.operator_process import OperatorProcess


def addresses(core: client.CoreV1Api, namespace: str) -> dict[str, list[str]]:
    return {s.metadata.name: ingress_ips(s) for s in core.list_namespaced_service(namespace).items}


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
def test_a_restarted_operator_keeps_every_address_and_serves_the_newcomers(
    core: client.CoreV1Api, pools: Pools, namespace: str, operator: OperatorProcess, how: int
) -> None:
    net = subnet()
    pools.create([f"{net}.0/27"])
    for i in range(8):
        create(core, namespace, service_manifest(f"old-{i}"))
    for i in range(8):
        wait_address(core, namespace, f"old-{i}")
    before = addresses(core, namespace)

    operator.stop(how)
    for i in (1, 4, 6):
        core.delete_namespaced_service(f"old-{i}", namespace)
        del before[f"old-{i}"]
    for i in range(5):
        create(core, namespace, service_manifest(f"new-{i}"))
    operator.start()

    for i in range(5):
        wait_address(core, namespace, f"new-{i}")
    after = addresses(core, namespace)
    assert {name: after[name] for name in before} == before
    held = Counter(ip for ips in after.values() for ip in ips)
    assert [ip for ip, count in held.items() if count > 1] == []
    assert all(
        our_condition(s).reason == "Allocated"
        for s in core.list_namespaced_service(namespace).items
    )


def test_a_restart_never_flashes_a_failure_on_a_service_that_holds_an_address(
    core: client.CoreV1Api, pools: Pools, namespace: str, operator: OperatorProcess
) -> None:
    pools.create([f"{subnet()}.0/28"], priority=3)
    create(core, namespace, service_manifest("steady"))
    wait_address(core, namespace, "steady")
    version = core.read_namespaced_service("steady", namespace).metadata.resource_version

    operator.stop()
    operator.start()
    create(core, namespace, service_manifest("probe"))
    wait_address(core, namespace, "probe")

    steady = core.read_namespaced_service("steady", namespace)
    assert steady.metadata.resource_version == version, "the restart rewrote a correct status"

"""What the switching stories (tests/integration/test_from_*.py) share: the Services' addresses
before and after, who allocated them, and docs/migration.md's conversion step."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import yaml
from kubernetes import client

from tests import kit
from tests.controlplane import ControlPlane
from tests.kit import Kubectl, ingress_ips


def addresses(core: client.CoreV1Api, namespace: str) -> dict[str, list[str]]:
    return {s.metadata.name: ingress_ips(s) for s in core.list_namespaced_service(namespace).items}


def settled(
    core: client.CoreV1Api, namespace: str, done: Callable[[Any], bool], what: str
) -> dict[str, list[str]]:
    """Every Service of the namespace `done`; their addresses. Fails after 180 s."""
    deadline = time.monotonic() + 180
    while True:
        services = core.list_namespaced_service(namespace).items
        waiting = [s.metadata.name for s in services if not done(s)]
        if not waiting:
            return {s.metadata.name: ingress_ips(s) for s in services}
        assert time.monotonic() < deadline, f"{len(waiting)} Services not {what}: {waiting[:5]}"
        time.sleep(1)


def moved(before: dict[str, list[str]], after: dict[str, list[str]]) -> list[str]:
    return [f"{n}: {before[n]} -> {after.get(n)}" for n in before if after.get(n) != before[n]]


def allocated_by_lbipam(service: Any) -> bool:
    condition = kit.our_condition(service)
    return condition is not None and condition.reason == "Allocated"


def convert_and_apply(
    plane: ControlPlane, kubectl: Kubectl, names: tuple[str, ...]
) -> dict[str, dict[str, Any]]:
    """docs/migration.md, step 2: `lbipam convert --from-cluster --check`, then apply. The
    IPPools of `names` (other tests' pools may be in the cluster), by name."""
    converted = subprocess.run(
        [sys.executable, "-m", "lbipam.cli", "convert", "--from-cluster", "--check"],
        capture_output=True,
        text=True,
        env=plane.env(),
        timeout=60,
    )
    assert converted.returncode == 0, converted.stderr
    ours = {
        d["metadata"]["name"]: d
        for d in yaml.safe_load_all(converted.stdout)
        if d["metadata"]["name"] in names
    }
    assert sorted(ours) == sorted(names), converted.stdout
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(list(ours.values())))
    return ours

"""People and programs write nonsense: a status by hand, huge and odd input, pools by thousands."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from kubernetes import client

from lbipam.api import COMPONENT, GROUP
from tests.faults.checker import Held, check
from tests.faults.conftest import Case, rss_kib
from tests.kit import (
    Kubectl,
    Pools,
    create,
    events_for,
    eventually,
    service_manifest,
    subnet,
    wait_address,
    wait_service,
)
from tests.operator_process import OperatorProcess

pytestmark = pytest.mark.faults


def _write_status(core: client.CoreV1Api, namespace: str, name: str, address: str) -> None:
    patch = {"status": {"loadBalancer": {"ingress": [{"ip": address, "ipMode": "VIP"}]}}}
    core.patch_namespaced_service_status(name, namespace, patch)


def test_an_address_written_by_hand_into_another_service_goes_back_to_its_older_holder(
    case: Case,
    pools: Pools,
    core: client.CoreV1Api,
    namespace: str,
    operator: OperatorProcess,
    api: client.ApiClient,
) -> None:
    assert operator.popen is not None
    pools.create([f"{subnet()}.0/24"])
    burst = case.burst(creates=150, delete_ratio=0.0, rate=60)
    burst.wait_created(60)
    names = [f"b-{i}" for i in range(8)]
    held = {name: wait_address(core, namespace, name)[0] for name in names}

    before = case.snapshot()
    operator.popen.send_signal(signal.SIGSTOP)  # so the checker sees the clash it must catch
    pairs = [(names[0], names[1]), (names[2], names[3]), (names[5], names[4])]
    for older, younger in pairs[:2]:
        _write_status(core, namespace, younger, held[older])  # the younger gets the older's
    _write_status(core, namespace, pairs[2][1], held[pairs[2][0]])  # and the other way round
    tampered = {pair[1] for pair in pairs}
    clash = check(api, before)
    operator.popen.send_signal(signal.SIGCONT)
    case.fault("3 Services' status overwritten by hand with another Service's address")

    assert sum("is held by" in v for v in clash.violations) == 3, clash.violations

    def by_hand(service: Held, _: str) -> bool:
        return service.key.split("/")[1] in tampered

    assert case.converge(before, may_flap=by_hand)
    for older, younger in pairs[:2]:
        # Not the API server's: its ClusterIP repair loop warns on Services too. Nor an earlier
        # one of lbipam's: under load a Service of the burst may be seen before its pool.
        eventually(
            lambda o=older, y=younger: [
                e
                for e in events_for(core, namespace, y)
                if e.type == "Warning"
                and e.reporting_component == f"{GROUP}/{COMPONENT}"
                and held[o] in e.message
            ],
            what=f"a Warning Event of lbipam's on {younger} naming {held[older]}",
        )


@pytest.fixture
def memory(operator: OperatorProcess) -> Iterator[list[int]]:
    """The operator's VmRSS (KiB) before the case; the case appends it after."""
    assert operator.popen is not None
    yield [rss_kib(operator.popen.pid)]


def test_garbage_and_hostile_services_get_conditions_and_the_operator_stays_small(
    case: Case,
    pools: Pools,
    core: client.CoreV1Api,
    namespace: str,
    operator: OperatorProcess,
    networking: client.NetworkingV1Api,
    memory: list[int],
) -> None:
    assert operator.popen is not None
    pools.create([f"{subnet()}.0/26"])
    ranges = ",".join(f"11.{i // 250}.{i % 250}.7/32" for i in range(10_000))
    hostile = {
        "huge-annotation": {"annotations": {"example.com/blob": "x" * 200_000}},
        "ten-thousand-ranges": {
            "annotations": {"service.beta.kubernetes.io/load-balancer-source-ranges": ranges},
            "externalTrafficPolicy": "Local",
        },
        "odd-unicode": {
            "annotations": {
                "lbipam.io/pool": "пул-\u200b,\u202eloop\u0301",
                "lbipam.io/sharing-key": "ключ-\ufeff",
            },
            "labels": {"odd": "A.b_c-" + "9" * 57},
        },
        "nul-address": {"annotations": {"lbipam.io/ips": "10.0.0.1\u0000"}},
        "address-bomb": {"annotations": {"lbipam.io/ips": "9" * 100_000}},
        "pool-bomb": {"annotations": {"lbipam.io/pool": ",".join(f"no{i}" for i in range(9000))}},
    }
    case.burst(creates=150, rate=60)
    for name, extra in hostile.items():
        create(core, namespace, service_manifest(name, **extra))
    case.fault("200 KB annotation, 10,000 source ranges, odd unicode, NUL, 100 KB garbage")

    assert case.converge()
    for name in ("huge-annotation", "ten-thousand-ranges"):
        assert wait_address(core, namespace, name)
    policy = networking.read_namespaced_network_policy("lbipam-ten-thousand-ranges", namespace)
    assert len(policy.spec.ingress[0]._from) == 10_000
    assert (
        operator.popen.poll() is None and operator.http(operator.health_port, "/healthz")[0] == 200
    )
    memory.append(rss_kib(operator.popen.pid))
    case.report.notes = f"VmRSS {memory[0] // 1024} -> {memory[1] // 1024} MiB"
    assert memory[1] - memory[0] < 150 * 1024, f"VmRSS grew from {memory[0]} to {memory[1]} KiB"


def test_a_pool_name_with_an_emoji_gets_a_condition_saying_no_such_pool(
    case: Case, pools: Pools, core: client.CoreV1Api, namespace: str
) -> None:
    pools.create([f"{subnet()}.0/28"])
    case.burst(creates=30, rate=30)
    create(core, namespace, service_manifest("emoji", annotations={"lbipam.io/pool": "pool-🚀"}))
    case.fault("lbipam.io/pool names a pool with an emoji")

    assert case.converge(timeout=20)


def test_two_thousand_tiny_pools_leave_the_operator_responsive(
    case: Case,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    kubectl: Kubectl,
    namespace: str,
    operator: OperatorProcess,
    memory: list[int],
) -> None:
    assert operator.popen is not None
    label = {"lbipam-test-many": namespace}
    nets = [subnet() for _ in range(8)]
    bodies = [
        {
            "apiVersion": "lbipam.io/v1alpha1",
            "kind": "IPPool",
            "metadata": {"name": f"{namespace}-tiny-{i}", "labels": label},
            "spec": {
                "addresses": [f"{nets[i // 250]}.{i % 250}"],
                "namespaceSelector": {"matchLabels": {"lbipam-test": namespace}},
            },
        }
        for i in range(2000)
    ]
    try:
        case.burst(creates=100, rate=20)
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda b: custom.create_cluster_custom_object(
                        "lbipam.io", "v1alpha1", "ippools", b
                    ),
                    bodies,
                )
            )
        case.fault(f"2,000 single-address pools created in {time.monotonic() - started:.0f}s")
        asked = time.monotonic()
        create(core, namespace, service_manifest("probe"))
        wait_service(core, namespace, "probe", lambda s: bool(s.status.load_balancer.ingress))
        case.report.notes = f"probe served in {time.monotonic() - asked:.1f}s"
        assert case.converge(timeout=60)
        memory.append(rss_kib(operator.popen.pid))
        assert memory[1] - memory[0] < 150 * 1024

        operator.stop()  # a rolling update: the new process rebuilds from 2,000 pools
        restarted = time.monotonic()
        operator.start(wait=False)
        operator.wait_ready(timeout=45)
        case.fault(f"operator restarted: ready in {time.monotonic() - restarted:.1f}s")
    finally:
        case.stop()
        _remove_pools(operator, custom, kubectl, namespace)


def _remove_pools(
    operator: OperatorProcess, custom: client.CustomObjectsApi, kubectl: Kubectl, namespace: str
) -> None:
    """Delete the tiny pools whatever state the operator is in, and leave it running."""
    selector = f"lbipam-test-many={namespace}"
    operator.kill()  # a backlog of pool events would keep it busy for minutes: start afresh
    kubectl("delete", "ippools", "-l", selector, "--wait=false")
    remaining = custom.list_cluster_custom_object(
        "lbipam.io", "v1alpha1", "ippools", label_selector=selector
    )["items"]
    patch = {"metadata": {"finalizers": None}}
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda p: custom.patch_cluster_custom_object(
                    "lbipam.io", "v1alpha1", "ippools", p["metadata"]["name"], patch
                ),
                [p for p in remaining if p["metadata"].get("finalizers")],
            )
        )
    eventually(
        lambda: (
            not custom.list_cluster_custom_object(
                "lbipam.io", "v1alpha1", "ippools", label_selector=selector
            )["items"]
        ),
        timeout=60,
        what="the tiny pools to be gone",
    )
    if operator.popen is None or operator.popen.poll() is not None:
        operator.start()

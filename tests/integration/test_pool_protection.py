"""A pool in use is never gone, and the IPv4 network/broadcast default moves nobody."""

from __future__ import annotations

import re
import threading
import time

from kubernetes import client

from tests.kit import (
    Pools,
    create,
    events_for,
    eventually,
    ingress_ips,
    our_condition,
    service_manifest,
    subnet,
    wait_address,
)
from tests.operator_process import OperatorProcess


def _burst(core: client.CoreV1Api, namespace: str, stop: threading.Event) -> None:
    """Other Services come and go meanwhile, so the operator is busy as in a real cluster."""
    i = 0
    while not stop.is_set():
        create(core, namespace, service_manifest(f"burst-{i}"))
        if i >= 5:
            core.delete_namespaced_service(f"burst-{i - 5}", namespace)
        i += 1
        time.sleep(0.02)


def test_deleting_a_pool_the_moment_its_first_address_shows_always_waits_for_the_holder(
    core: client.CoreV1Api, pools: Pools, namespace: str, operator: OperatorProcess
) -> None:
    pools.create([f"{subnet()}.0/24"])  # the burst's pool
    stop = threading.Event()
    burst = threading.Thread(target=_burst, args=(core, namespace, stop), daemon=True)
    burst.start()
    net = subnet()
    kept = 0
    holder: dict[str, str] = {}  # pool -> its Service, for the failure message
    try:
        for round_ in range(50):
            name = pools.create([f"{net}.{round_ * 4}/30"], autoAssign=False)
            service = holder[name] = f"named-{round_}"
            create(core, namespace, service_manifest(service, annotations={"lbipam.io/pool": name}))
            [address] = wait_address(core, namespace, service)
            pools.delete(name)
            time.sleep(0.5)

            pool = pools.get(name)  # raises 404 when the pool vanished under its holder
            assert pool["metadata"].get("deletionTimestamp"), name
            assert "lbipam.io/protection" in pool["metadata"]["finalizers"]
            held = core.read_namespaced_service(service, namespace)
            assert ingress_ips(held) == [address]
            assert our_condition(held).reason == "Allocated"
            kept += 1
            core.delete_namespaced_service(service, namespace)
    finally:
        stop.set()
        burst.join()
    assert kept == 50

    def left() -> list[str]:
        names = []
        for name in pools.names[1:]:
            try:
                meta = pools.get(name)["metadata"]
            except client.ApiException as error:
                if error.status == 404:
                    continue
                raise
            names.append(f"{name} (finalizers {meta.get('finalizers')})")
        return names

    try:
        eventually(lambda: not left(), timeout=30, what="pools gone")
    except AssertionError as error:
        # Which pool stayed, and what the operator did about it and its Service (a burst's
        # log tail would not show it), for the next reader.
        stuck = left()
        names = [entry.split()[0] for entry in stuck]
        about = re.compile("|".join(rf"{n}\b|/{holder[n]}\b" for n in names))
        logs = [line for line in operator.logs(lines=10**6).splitlines() if about.search(line)]
        raise AssertionError(
            f"{error}: still there: {stuck}\noperator:\n" + "\n".join(logs[-80:])
        ) from None


def test_a_new_pool_says_protecting_until_its_finalizer_is_on_then_ready(
    pools: Pools,
) -> None:
    name = pools.create([f"{subnet()}.0/29"])
    pools.status(name, allocated="0")
    assert pools.condition(name, "Ready")["status"] == "True"
    assert "lbipam.io/protection" in pools.get(name)["metadata"]["finalizers"]


def test_a_fresh_slash_24_never_hands_out_its_network_or_broadcast_address(
    core: client.CoreV1Api, pools: Pools, namespace: str
) -> None:
    net = subnet()
    pools.create([f"{net}.0/24"], allowFirstLastIPs=False, priority=7)
    create(core, namespace, service_manifest("first", loadBalancerIP=f"{net}.0"))
    create(core, namespace, service_manifest("web"))

    assert wait_address(core, namespace, "web") == [f"{net}.1"]
    refused = eventually(
        lambda: (
            (c := our_condition(core.read_namespaced_service("first", namespace)))
            and c.reason == "AddressNotInPool"
            and c
        ),
        what="the network address refused",
    )
    assert "allowFirstLastIPs" in refused.message


def test_a_held_network_address_survives_the_new_default_and_a_restart(
    core: client.CoreV1Api, pools: Pools, namespace: str, operator: OperatorProcess
) -> None:
    net = subnet()
    name = pools.create([f"{net}.0/29"], allowFirstLastIPs=True, priority=8)
    create(core, namespace, service_manifest("old"))
    assert wait_address(core, namespace, "old") == [f"{net}.0"]

    operator.stop()
    pools.patch(name, {"allowFirstLastIPs": False})
    operator.start()
    create(core, namespace, service_manifest("new"))

    assert wait_address(core, namespace, "new") == [f"{net}.1"]
    old = core.read_namespaced_service("old", namespace)
    assert ingress_ips(old) == [f"{net}.0"]
    assert our_condition(old).reason == "Allocated"
    assert [e.reason for e in events_for(core, namespace, "old")] == ["AddressAllocated"]
    pools.status(name, total="6", allocated="1")

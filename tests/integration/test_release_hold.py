"""Holds after release: an IPPool's releaseHold keeps a let-go address for its Service."""

from __future__ import annotations

import signal

import pytest
from kubernetes import client

from tests.kit import (
    Pools,
    create,
    eventually,
    service_manifest,
    subnet,
    wait_address,
    wait_event,
    wait_reason,
)
from tests.operator_process import OperatorProcess

HELD_SINCE = "lbipam.io/held-since"


def held_since(networking: client.NetworkingV1Api, address: str) -> str | None:
    """When the claim on `address` says its hold began; None when it is no hold."""
    try:
        claim = networking.read_ip_address(address)
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise
    return (claim.metadata.annotations or {}).get(HELD_SINCE)


def web_let_go(
    core: client.CoreV1Api,
    networking: client.NetworkingV1Api,
    namespace: str,
    pools: Pools,
    addresses: str,
    release_hold: str,
) -> tuple[str, str, str]:
    """A pool of `addresses` with `release_hold`, and its first address handed to a Service
    "web" that is then deleted: the pool, the address and when its hold began."""
    pool = pools.create([addresses], releaseHold=release_hold)
    create(core, namespace, service_manifest("web"))
    [address] = wait_address(core, namespace, "web")
    core.delete_namespaced_service("web", namespace)
    since = eventually(lambda: held_since(networking, address), what=f"{address} held")
    return pool, address, since


def test_a_service_recreated_within_the_hold_gets_its_address_back(
    core: client.CoreV1Api, networking: client.NetworkingV1Api, pools: Pools, namespace: str
) -> None:
    net = subnet()
    pool, address, since = web_let_go(core, networking, namespace, pools, f"{net}.1-{net}.3", "10m")
    pools.status(pool, held="1", allocated="1")

    create(core, namespace, service_manifest("first-comer"))
    assert wait_address(core, namespace, "first-comer") != [address]
    create(core, namespace, service_manifest("web"))

    assert wait_address(core, namespace, "web") == [address]
    kept = wait_event(core, namespace, "web", "AddressKept")
    assert address in kept.message and since in kept.message
    eventually(lambda: held_since(networking, address) is None, what="a plain claim again")
    pools.status(pool, held="0")


def test_after_the_hold_the_address_is_free_again(
    core: client.CoreV1Api, networking: client.NetworkingV1Api, pools: Pools, namespace: str
) -> None:
    pool, address, _ = web_let_go(core, networking, namespace, pools, f"{subnet()}.7", "8s")

    create(core, namespace, service_manifest("other"))
    wait_reason(core, namespace, "other", "PoolExhausted")
    eventually(
        lambda: (
            "1 held after release, the first until"
            in pools.condition(pool, "Exhausted").get("message", "")
        ),
        what="the pool's Exhausted condition counting the hold",
    )

    assert wait_address(core, namespace, "other") == [address]
    pools.status(pool, held="0")


def test_someone_elses_request_for_a_held_address_is_refused_naming_the_hold(
    core: client.CoreV1Api, networking: client.NetworkingV1Api, pools: Pools, namespace: str
) -> None:
    net = subnet()
    _, address, _ = web_let_go(core, networking, namespace, pools, f"{net}.1-{net}.3", "10m")

    create(core, namespace, service_manifest("thief", loadBalancerIP=address))

    refused = wait_reason(core, namespace, "thief", "AddressHeld")
    assert f"{address} is held for Service {namespace}/web after its release, until" in (
        refused.message
    )


def test_a_hold_counts_toward_the_namespace_limit_until_its_service_comes_back(
    core: client.CoreV1Api, networking: client.NetworkingV1Api, pools: Pools, namespace: str
) -> None:
    """With perNamespaceLimit 1, the namespace's one address is held for web while web is gone:
    another Service of the namespace waits, and web, re-created, gets its address back."""
    net = subnet()
    pools.create([f"{net}.1-{net}.3"], releaseHold="10m", perNamespaceLimit=1)
    create(core, namespace, service_manifest("web"))
    [address] = wait_address(core, namespace, "web")
    core.delete_namespaced_service("web", namespace)
    eventually(lambda: held_since(networking, address), what=f"{address} held")

    create(core, namespace, service_manifest("api"))
    waiting = wait_reason(core, namespace, "api", "NamespaceLimitReached")
    assert f"{address} (held for {namespace}/web after release)" in waiting.message
    create(core, namespace, service_manifest("web"))

    assert wait_address(core, namespace, "web") == [address]
    wait_reason(core, namespace, "api", "NamespaceLimitReached")


@pytest.mark.parametrize("deleted", ["before", "meanwhile"])
def test_the_hold_survives_a_kill_and_a_restart(
    core: client.CoreV1Api,
    networking: client.NetworkingV1Api,
    pools: Pools,
    namespace: str,
    operator: OperatorProcess,
    deleted: str,
) -> None:
    """The Service is deleted before the operator is killed, or while it is down."""
    net = subnet()
    pools.create([f"{net}.1-{net}.3"], releaseHold="10m")
    create(core, namespace, service_manifest("web"))
    [address] = wait_address(core, namespace, "web")
    if deleted == "before":
        core.delete_namespaced_service("web", namespace)
        eventually(lambda: held_since(networking, address), what=f"{address} held")

    operator.stop(signal.SIGKILL)
    if deleted == "meanwhile":
        core.delete_namespaced_service("web", namespace)
    operator.start()
    eventually(lambda: held_since(networking, address), what=f"{address} held")
    create(core, namespace, service_manifest("newcomer"))
    assert wait_address(core, namespace, "newcomer") != [address]
    operator.stop()
    operator.start()
    create(core, namespace, service_manifest("web"))

    assert wait_address(core, namespace, "web") == [address]


def test_a_shortened_release_hold_ends_holds_sooner(
    core: client.CoreV1Api, networking: client.NetworkingV1Api, pools: Pools, namespace: str
) -> None:
    pool, address, _ = web_let_go(core, networking, namespace, pools, f"{subnet()}.9", "1h")
    create(core, namespace, service_manifest("other"))
    wait_reason(core, namespace, "other", "PoolExhausted")

    pools.patch(pool, {"releaseHold": "2s"})

    assert wait_address(core, namespace, "other") == [address]
    eventually(lambda: held_since(networking, address) is None, what="the hold's claim gone")


def test_a_release_hold_that_is_no_duration_is_refused_naming_the_field(
    pools: Pools, namespace: str
) -> None:
    try:
        pools.create([f"{subnet()}.0/30"], releaseHold="10 minutes")
    except client.ApiException as error:
        assert error.status == 422
        assert "releaseHold must be a duration" in error.body
    else:
        raise AssertionError("the API server took releaseHold: 10 minutes")

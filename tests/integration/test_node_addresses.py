"""A Node's own addresses (InternalIP, ExternalIP) are never handed out by a pool."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.kit import (
    Pools,
    create,
    eventually,
    ingress_ips,
    service_manifest,
    subnet,
    wait_address,
    wait_event,
    wait_reason,
)
from tests.operator_process import OperatorProcess

MakeNode = Callable[[str, str], str]


def addresses(internal: str) -> list[dict[str, str]]:
    return [
        {"type": "InternalIP", "address": internal},
        {"type": "Hostname", "address": "not-an-address"},
    ]


@pytest.fixture
def nodes(core: client.CoreV1Api, namespace: str) -> Iterator[MakeNode]:
    """Nodes with no kubelet behind them: the API server keeps their status as written."""
    made: list[str] = []

    def make(name: str, internal: str) -> str:
        name = f"{namespace}-{name}"
        body = {"metadata": {"name": name}, "status": {"addresses": addresses(internal)}}
        core.create_node(body)
        made.append(name)
        return name

    yield make
    for name in made:
        core.delete_node(name)


def node_condition(pools: Pools, pool: str, node: str) -> dict[str, Any]:
    def names_it() -> dict[str, Any] | None:
        overlap = pools.condition(pool, "OverlapsNodeAddress")
        shown = overlap.get("status") == "True" and f"Node {node}" in overlap["message"]
        return overlap if shown else None

    return eventually(names_it, what=f"OverlapsNodeAddress naming {node}")


def test_a_pool_never_hands_out_a_node_address_until_the_node_moves_off_it(
    core: client.CoreV1Api, pools: Pools, namespace: str, nodes: MakeNode
) -> None:
    net = subnet()
    node = nodes("worker", f"{net}.2")
    pool = pools.create([f"{net}.1-{net}.3"])
    assert node_condition(pools, pool, node)["reason"] == "Node"

    for name in ("first", "second"):
        create(core, namespace, service_manifest(name))
    got = {wait_address(core, namespace, name)[0] for name in ("first", "second")}
    assert got == {f"{net}.1", f"{net}.3"}
    create(core, namespace, service_manifest("third"))
    assert wait_reason(core, namespace, "third", "PoolExhausted").status == "False"
    assert ingress_ips(core.read_namespaced_service("third", namespace)) == []

    core.patch_node_status(node, {"status": {"addresses": addresses(f"{net}.200")}})

    assert wait_address(core, namespace, "third") == [f"{net}.2"]
    eventually(
        lambda: pools.condition(pool, "OverlapsNodeAddress").get("status") == "False",
        what="the pool no longer overlapping the node",
    )


def test_a_service_holding_an_address_a_node_takes_keeps_it_and_is_told(
    core: client.CoreV1Api, pools: Pools, namespace: str, nodes: MakeNode
) -> None:
    net = subnet()
    pool = pools.create([f"{net}.1-{net}.2"])
    create(core, namespace, service_manifest("web"))
    assert wait_address(core, namespace, "web") == [f"{net}.1"]

    node = nodes("joined", f"{net}.1")

    told = wait_event(core, namespace, "web", "ReservedAddressHeld")
    assert told.type == "Warning"
    assert f"{net}.1, which Node {node} uses itself" in told.message
    node_condition(pools, pool, node)
    assert ingress_ips(core.read_namespaced_service("web", namespace)) == [f"{net}.1"]
    create(core, namespace, service_manifest("next"))
    assert wait_address(core, namespace, "next") == [f"{net}.2"]


def test_a_node_that_took_an_address_while_the_operator_was_down_is_known_before_any_decision(
    core: client.CoreV1Api,
    pools: Pools,
    namespace: str,
    nodes: MakeNode,
    operator: OperatorProcess,
) -> None:
    net = subnet()
    pools.create([f"{net}.1-{net}.2"])
    create(core, namespace, service_manifest("web"))
    assert wait_address(core, namespace, "web") == [f"{net}.1"]

    operator.stop()
    nodes("while-down", f"{net}.2")
    create(core, namespace, service_manifest("api"))
    operator.start()

    # Had the first decision not known the Node, `api` would hold .2 now, and keep it.
    assert wait_reason(core, namespace, "api", "PoolExhausted").status == "False"
    assert ingress_ips(core.read_namespaced_service("api", namespace)) == []

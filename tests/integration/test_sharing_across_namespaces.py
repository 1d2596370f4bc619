"""Teams of different namespaces sharing one address, each agreeing to it
(lbipam.io/sharing-cross-namespace, or Cilium's lbipam.cilium.io/sharing-cross-namespace)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.kit import (
    Pools,
    create,
    events_for,
    eventually,
    fresh_namespace,
    ingress_ips,
    service_manifest,
    subnet,
    wait_reason,
    wait_service,
)

KEY = "lbipam.io/sharing-key"
CONSENT = "lbipam.io/sharing-cross-namespace"
# A loaded 2-core machine runs several control planes: allow for it.
PATIENCE = 60


@pytest.fixture
def blog(core: client.CoreV1Api) -> Iterator[str]:
    with fresh_namespace(core) as name:
        yield name


@pytest.fixture
def post(core: client.CoreV1Api) -> Iterator[str]:
    with fresh_namespace(core) as name:
        yield name


def pool_for(pools: Pools, *namespaces: str) -> str:
    """A fresh /24 for the namespaces' Services only; returns its first three octets."""
    net = subnet()
    selector = {
        "matchExpressions": [{"key": "lbipam-test", "operator": "In", "values": list(namespaces)}]
    }
    pools.create([f"{net}.0/24"], namespaceSelector=selector)
    return net


def serve(core: client.CoreV1Api, namespace: str, name: str, port: int, **annotations: str) -> None:
    ports = [{"port": port, "protocol": "TCP"}]
    create(core, namespace, service_manifest(name, annotations=annotations, ports=ports))


def addresses(core: client.CoreV1Api, namespace: str, name: str, *, differ: str = "") -> str:
    """The Service's one address, once it has one (other than `differ`)."""
    service = wait_service(
        core,
        namespace,
        name,
        lambda s: len(ingress_ips(s)) == 1 and ingress_ips(s) != [differ],
        timeout=PATIENCE,
        what=f"one address other than {differ!r}" if differ else "one address",
    )
    return str(ingress_ips(service)[0])


def same_address(core: client.CoreV1Api, namespace: str, name: str, address: str) -> None:
    wait_service(
        core,
        namespace,
        name,
        lambda s: ingress_ips(s) == [address],
        timeout=PATIENCE,
        what=f"address {address}",
    )


def annotate(core: client.CoreV1Api, namespace: str, name: str, **annotations: Any) -> None:
    core.patch_namespaced_service(name, namespace, {"metadata": {"annotations": annotations}})


def test_namespaces_that_consent_to_each_other_share_and_others_do_not(
    core: client.CoreV1Api, pools: Pools, namespace: str, blog: str, post: str
) -> None:
    shop = namespace
    net = pool_for(pools, shop, blog, post)
    serve(core, shop, "web", 80, **{KEY: "edge", CONSENT: "*"})
    shared = addresses(core, shop, "web")
    assert shared.startswith(f"{net}.")

    # Both sides consent (shop with "*"): one address.
    serve(core, blog, "feed", 443, **{KEY: "edge", CONSENT: f"{shop}, {post}"})
    same_address(core, blog, "feed", shared)
    serve(core, post, "mail", 25, **{KEY: "edge", CONSENT: "*"})
    same_address(core, post, "mail", shared)

    # Only shop consents: an address of its own.
    serve(core, post, "solo", 22, **{KEY: "edge"})
    assert addresses(core, post, "solo") != shared

    # Asking for the address outright is refused, naming the missing consent.
    serve(core, post, "pushy", 8080, **{KEY: "edge", "lbipam.io/ips": shared})
    refused = wait_reason(core, post, "pushy", "AddressInUse")
    # It names the older of shop/web and blog/feed (created in one second, maybe).
    assert f"Service {post}/pushy does not list namespace" in refused.message
    assert f"in {CONSENT}" in refused.message

    # Consenting, but a port another namespace's Service uses: refused as within one.
    serve(core, blog, "clash", 80, **{KEY: "edge", CONSENT: "*", "lbipam.io/ips": shared})
    clash = wait_reason(core, blog, "clash", "PortConflict")
    assert f"with Service {shop}/web, which also uses port 80/TCP" in clash.message


def test_withdrawn_consent_moves_the_younger_with_a_warning(
    core: client.CoreV1Api, pools: Pools, namespace: str, blog: str
) -> None:
    shop = namespace
    pool_for(pools, shop, blog)
    serve(core, shop, "web", 80, **{KEY: "edge", CONSENT: blog})
    shared = addresses(core, shop, "web")
    # creationTimestamp counts seconds (a tie goes to the namespace's name): web is older.
    time.sleep(1.1)
    serve(core, blog, "feed", 443, **{KEY: "edge", CONSENT: shop})
    same_address(core, blog, "feed", shared)

    annotate(core, shop, "web", **{CONSENT: None})

    moved = addresses(core, blog, "feed", differ=shared)
    assert moved != shared
    same_address(core, shop, "web", shared)  # the older keeps it

    def warned() -> Any:
        return [
            event
            for event in events_for(core, blog, "feed")
            if event.type == "Warning"
            and event.reason == "AddressRevoked"
            and f'Service {shop}/web does not list namespace "{blog}"' in event.message
        ]

    (warning,) = eventually(warned, timeout=PATIENCE, what="an AddressRevoked Warning on feed")
    assert warning.message.startswith(f"{shared} is held by the older Service {shop}/web")


def test_cilium_users_consent_carries_over(
    core: client.CoreV1Api, pools: Pools, namespace: str, blog: str
) -> None:
    shop = namespace
    pool_for(pools, shop, blog)
    cilium_key = "lbipam.cilium.io/sharing-key"
    serve(
        core,
        shop,
        "web",
        80,
        **{cilium_key: "edge", "lbipam.cilium.io/sharing-cross-namespace": blog},
    )
    shared = addresses(core, shop, "web")
    serve(
        core,
        blog,
        "feed",
        443,
        **{
            "io.cilium/lb-ipam-sharing-key": "edge",
            "io.cilium/lb-ipam-sharing-cross-namespace": shop,
        },
    )
    same_address(core, blog, "feed", shared)

    serve(
        core,
        blog,
        "torn",
        8443,
        **{cilium_key: "edge", CONSENT: shop, "lbipam.cilium.io/sharing-cross-namespace": "*"},
    )
    torn = wait_reason(core, blog, "torn", "InvalidRequest")
    assert f'{CONSENT} "{shop}" and lbipam.cilium.io/sharing-cross-namespace "*" disagree' in (
        torn.message
    )

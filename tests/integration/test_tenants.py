"""Pools shared by tenants, on the real control plane: reserved addresses go to their tenant
only, and a namespace holds no more of a pool than perNamespaceLimit allows."""

from __future__ import annotations

from kubernetes import client

from tests.kit import (
    Kubectl,
    Pools,
    create,
    eventually,
    ingress_ips,
    service_manifest,
    subnet,
    wait_address,
    wait_reason,
    wait_service,
)

SHARED = {"lbipam.io/sharing-key": "front"}


def test_a_reserved_address_goes_to_its_service_and_nobody_else(
    core: client.CoreV1Api, kubectl: Kubectl, pools: Pools, namespace: str
) -> None:
    net = subnet()
    reservation = {"addresses": [f"{net}.0-{net}.1"], "namespace": namespace, "service": "web"}
    pool = pools.create([f"{net}.0/29"], reservations=[reservation])

    create(core, namespace, service_manifest("other"))
    assert wait_address(core, namespace, "other") == [f"{net}.2"]  # auto-assign skips .0, .1

    create(core, namespace, service_manifest("thief", annotations={"lbipam.io/ips": f"{net}.0"}))
    refused = wait_reason(core, namespace, "thief", "AddressReserved")
    assert refused.message == (
        f'{net}.0 is reserved by pool "{pool}" reservations[0] for Service "{namespace}/web"'
    )

    create(core, namespace, service_manifest("web"))
    assert wait_address(core, namespace, "web") == [f"{net}.0"]
    pools.status(pool, total="8", allocated="2", reserved="1", available="5")
    header, row = kubectl("get", "ippools", pool, "-o", "wide").stdout.splitlines()
    assert dict(zip(header.split(), row.split(), strict=False))["RESERVED"] == "1"


def test_the_api_server_and_the_operator_refuse_bad_reservations_naming_the_entry(
    kubectl: Kubectl, pools: Pools, namespace: str
) -> None:
    net = subnet()
    manifest = (
        "apiVersion: lbipam.io/v1alpha1\nkind: IPPool\nmetadata:\n  name: bad-tenants\n"
        f"spec:\n  addresses: ['{net}.0/24']\n  perNamespaceLimit: -1\n"
        f"  reservations:\n  - addresses: ['{net}.7']\n    namespace: Shop\n"
    )
    result = kubectl("apply", "-f", "-", input=manifest, check=False)
    assert result.returncode != 0
    assert "spec.reservations[0].namespace" in result.stderr
    assert 'namespace "Shop" is not a namespace name' in result.stderr
    assert "spec.perNamespaceLimit" in result.stderr

    outside = {"addresses": [f"{net}.7", "10.255.0.0/30"], "namespace": namespace}
    pool = pools.create([f"{net}.0/29"], reservations=[outside])
    ready = eventually(
        lambda: (
            pools.condition(pool, "Ready").get("reason") == "InvalidSpec"
            and pools.condition(pool, "Ready")
        ),
        what="InvalidSpec",
    )
    assert ready["message"].endswith(
        'reservations[0].addresses[1] "10.255.0.0/30": lies outside the pool\'s addresses; '
        "it hands out no new address until that changes"
    )


def test_a_namespace_at_its_limit_waits_until_one_of_its_addresses_is_freed(
    core: client.CoreV1Api, pools: Pools, namespace: str
) -> None:
    net = subnet()
    pool = pools.create([f"{net}.0/28"], perNamespaceLimit=2)
    http = [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]
    https = [{"port": 443, "targetPort": 8443, "protocol": "TCP"}]
    create(core, namespace, service_manifest("front-http", annotations=SHARED, ports=http))
    assert wait_address(core, namespace, "front-http") == [f"{net}.0"]
    create(core, namespace, service_manifest("front-https", annotations=SHARED, ports=https))
    assert wait_address(core, namespace, "front-https") == [f"{net}.0"]  # shared: counts once
    create(core, namespace, service_manifest("api"))
    assert wait_address(core, namespace, "api") == [f"{net}.1"]

    create(core, namespace, service_manifest("late"))
    waiting = wait_reason(core, namespace, "late", "NamespaceLimitReached")
    assert waiting.message == (
        f'namespace "{namespace}" holds 2 addresses of pool "{pool}", its perNamespaceLimit '
        f"is 2: {net}.0 ({namespace}/front-http, {namespace}/front-https), "
        f"{net}.1 ({namespace}/api)"
    )

    core.delete_namespaced_service("api", namespace)
    assert wait_address(core, namespace, "late") == [f"{net}.1"]


def test_lowering_the_limit_takes_nothing_away_and_the_pool_says_so(
    core: client.CoreV1Api, pools: Pools, namespace: str
) -> None:
    net = subnet()
    pool = pools.create([f"{net}.0/28"], perNamespaceLimit=3)
    for name in ("a", "b"):
        create(core, namespace, service_manifest(name))
        wait_address(core, namespace, name)

    pools.patch(pool, {"perNamespaceLimit": 1})
    over = eventually(
        lambda: (
            pools.condition(pool, "OverNamespaceLimit").get("status") == "True"
            and pools.condition(pool, "OverNamespaceLimit")
        ),
        what="OverNamespaceLimit",
    )
    assert f"{namespace} holds 2" in over["message"]
    create(core, namespace, service_manifest("c"))
    wait_reason(core, namespace, "c", "NamespaceLimitReached")
    for name, address in (("a", f"{net}.0"), ("b", f"{net}.1")):
        kept = wait_service(core, namespace, name, lambda s: bool(ingress_ips(s)))
        assert ingress_ips(kept) == [address]

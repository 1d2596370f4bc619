"""allocationOrder: a Random pool's addresses cannot be guessed by counting up from its start."""

from __future__ import annotations

import ipaddress

from kubernetes import client

from tests.kit import Kubectl, Pools, create, service_manifest, subnet, wait_address

V6_NET = "fd00:a110:c8::/64"


def test_a_random_pool_hands_out_distinct_addresses_of_both_families_not_in_lowest_order(
    core: client.CoreV1Api, kubectl: Kubectl, pools: Pools, namespace: str
) -> None:
    net = subnet()
    v4_net = ipaddress.ip_network(f"{net}.0/24")
    v6_net = ipaddress.ip_network(V6_NET)
    pool = pools.create([str(v4_net), V6_NET], allocationOrder="Random")
    handed: list[list[str]] = []
    for number in range(5):
        name = f"web-{number}"
        create(core, namespace, service_manifest(name, ipFamilyPolicy="RequireDualStack"))
        # One at a time: each decision sees every address handed out before it.
        handed.append(wait_address(core, namespace, name, count=2))

    v4 = [ipaddress.ip_address(a) for a, _ in handed]
    v6 = [ipaddress.ip_address(b) for _, b in handed]
    assert len(set(v4)) == len(set(v6)) == 5, handed
    assert all(a in v4_net for a in v4) and all(b in v6_net for b in v6), handed
    # Lowest order would give .0 to .4 and ::0 to ::4. Random reproduces either with a
    # chance under 1e-11, and puts an IPv6 address in the first 2^32 of the /64 with 2^-32.
    assert v4 != list(v4_net)[:5], handed
    assert all(int(b) - int(v6_net.network_address) >= 2**32 for b in v6), handed
    pools.status(pool, allocated="10")
    header, row = kubectl("get", "ippools", pool, "-o", "wide").stdout.splitlines()
    assert dict(zip(header.split(), row.split(), strict=False))["ORDER"] == "Random"


def test_an_unknown_allocation_order_is_refused_and_an_absent_one_is_lowest(
    kubectl: Kubectl, pools: Pools
) -> None:
    manifest = (
        "apiVersion: lbipam.io/v1alpha1\nkind: IPPool\nmetadata:\n  name: sideways\n"
        f"spec:\n  addresses: ['{subnet()}.0/24']\n  allocationOrder: Sideways\n"
    )
    result = kubectl("apply", "-f", "-", input=manifest, check=False)

    assert result.returncode != 0
    assert "spec.allocationOrder" in result.stderr
    assert 'Unsupported value: "Sideways"' in result.stderr
    assert '"Lowest", "Random"' in result.stderr

    pool = pools.create([f"{subnet()}.0/24"])
    assert pools.get(pool)["spec"]["allocationOrder"] == "Lowest"

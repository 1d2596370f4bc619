"""`kubectl lbipam`, run as a user runs it: through kubectl, against the real cluster and the
real operator."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from tests.controlplane import ControlPlane
from tests.kit import (
    GROUP,
    VERSION,
    Pools,
    create,
    eventually,
    held_since,
    service_manifest,
    subnet,
    wait_address,
    wait_event,
    wait_policy,
    wait_reason,
)
from tests.kubeconfigs import write_kubeconfig
from tests.plugin import BIN, kubectl_lbipam

GOLD = {"matchLabels": {"tier": "gold"}}
POOL, IPS = "lbipam.io/pool", "lbipam.io/ips"


def lbipam(plane: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    return kubectl_lbipam(plane, *args)


def output(plane: ControlPlane, *args: str) -> Any:
    """The parsed `-o json` of a command that succeeds."""
    done = lbipam(plane, *args, "-o", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def row(text: str, first: str) -> list[str]:
    """The table row starting with `first`, split into cells."""
    (found,) = [line.split() for line in text.splitlines() if line.split()[:1] == [first]]
    return found


def one_address_pool(pools: Pools, namespace: str) -> tuple[str, str]:
    address = f"{subnet()}.7"
    return pools.create([address], name=f"{namespace}-one"), address


def first_holds_second_waits(
    core: client.CoreV1Api, pools: Pools, namespace: str, name_the_pool: bool = False
) -> tuple[str, str]:
    """A pool of one address, held by Service `first`, while `second` waits for it."""
    pool, address = one_address_pool(pools, namespace)
    annotations = {"lbipam.io/pool": pool} if name_the_pool else {}
    create(core, namespace, service_manifest("first", annotations=annotations))
    assert wait_address(core, namespace, "first") == [address]
    create(core, namespace, service_manifest("second", annotations=annotations))
    wait_reason(core, namespace, "second", "PoolExhausted")
    return pool, address


def test_pools_shows_use_conditions_and_holders(
    control_plane: ControlPlane, core: client.CoreV1Api, pools: Pools, namespace: str
) -> None:
    net = subnet()
    wide = pools.create([f"{net}.0/30"], name=f"{namespace}-wide")
    one, address = one_address_pool(pools, namespace)
    create(core, namespace, service_manifest("web", annotations={"lbipam.io/pool": wide}))
    create(core, namespace, service_manifest("first", annotations={"lbipam.io/pool": one}))
    assert wait_address(core, namespace, "web") == [f"{net}.0"]
    assert wait_address(core, namespace, "first") == [address]
    pools.status(one, available="0")
    pools.status(wide, allocated="1")

    shown = lbipam(control_plane, "pools", "--show-services")

    assert shown.returncode == 0, shown.stderr
    counts = ["TOTAL", "ALLOCATED", "AVAILABLE", "HELD", "RESERVED"]
    header = ["NAME", "USED", *counts, "PRIORITY", "AUTO"]
    assert row(shown.stdout, "NAME") == [*header, "STATUS"]
    assert row(shown.stdout, wide)[1:] == [
        "[#####---------------]",
        "25%",
        "4",
        "1",
        "3",
        "0",
        "0",
        "0",
        "yes",
        "Ready",
    ]
    assert row(shown.stdout, one)[1:] == [
        "[####################]",
        "100%",
        "1",
        "1",
        "0",
        "0",
        "0",
        "0",
        "yes",
        "Ready,Exhausted",
    ]
    assert "  Exhausted=True Exhausted: no address left" in shown.stdout
    assert row(shown.stdout, f"{namespace}/first") == [f"{namespace}/first", address]
    assert row(shown.stdout, f"{namespace}/web") == [f"{namespace}/web", f"{net}.0"]

    listed = {p["name"]: p for p in output(control_plane, "pools")}
    assert listed[wide]["services"] == [{"service": f"{namespace}/web", "addresses": [f"{net}.0"]}]
    assert (listed[one]["total"], listed[one]["allocated"], listed[one]["available"]) == (1, 1, 0)


def test_services_says_who_holds_what_and_pending_says_why_the_rest_wait(
    control_plane: ControlPlane, core: client.CoreV1Api, pools: Pools, namespace: str
) -> None:
    one, address = first_holds_second_waits(core, pools, namespace)

    everyone = lbipam(control_plane, "services", "-n", namespace)
    pending = lbipam(control_plane, "services", "--pending")

    assert everyone.returncode == 0, everyone.stderr
    assert [line.split() for line in everyone.stdout.splitlines()] == [
        ["NAMESPACE", "NAME", "ADDRESSES", "POOL", "STATUS"],
        [namespace, "first", address, one, "Allocated"],
        [namespace, "second", "<pending>", "-", "PoolExhausted"],
    ]
    waiting = [line for line in pending.stdout.splitlines() if line.startswith(namespace)]
    assert len(waiting) == 1
    assert waiting[0].split()[:3] == [namespace, "second", "PoolExhausted"]
    assert one in waiting[0]
    as_yaml = yaml.safe_load(
        lbipam(control_plane, "services", "-n", namespace, "-o", "yaml").stdout
    )
    assert [(s["name"], s["addresses"], s["pools"]) for s in as_yaml] == [
        ("first", [address], [one]),
        ("second", [], []),
    ]


def test_why_a_service_waits_in_plain_words(
    control_plane: ControlPlane, core: client.CoreV1Api, pools: Pools, namespace: str
) -> None:
    other = pools.create([f"{subnet()}.0/30"], name=f"{namespace}-other")
    one, address = first_holds_second_waits(core, pools, namespace, name_the_pool=True)
    wait_event(core, namespace, "second", "AllocationFailed")

    shown = lbipam(control_plane, "why", f"{namespace}/second")

    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert f"Service {namespace}/second It waits: every pool it may use is full." in text
    assert "lbipam says (PoolExhausted," in text
    assert f"pools: {one}" in text
    assert f"{one} (0 available): may use: named in lbipam.io/pool" in text
    assert other not in text, "a Service naming its pool is tried on that pool alone"
    assert "Warning AllocationFailed" in text
    assert "NetworkPolicy: none (no loadBalancerSourceRanges to enforce)." in text

    plain = output(control_plane, "why", f"{namespace}/first")
    assert plain["holds"] == [
        {"address": address, "pool": one, "claim": f"Service {namespace}/first"}
    ]
    assert plain["condition"]["reason"] == "Allocated"


def test_why_explains_the_pools_a_service_may_not_use_and_its_network_policy(
    control_plane: ControlPlane,
    core: client.CoreV1Api,
    networking: client.NetworkingV1Api,
    pools: Pools,
    namespace: str,
) -> None:
    net = subnet()
    gold = pools.create([f"{subnet()}.0/30"], name=f"{namespace}-gold", serviceSelector=GOLD)
    manual_net = subnet()
    manual = pools.create([f"{manual_net}.0/30"], name=f"{namespace}-manual", autoAssign=False)
    plain = pools.create([f"{net}.0/30"], name=f"{namespace}-plain")
    v6 = pools.create([f"fd00:7:{namespace[2:6]}::/126"], name=f"{namespace}-v6")
    manifest = service_manifest(
        "fw", loadBalancerSourceRanges=["10.0.0.0/8"], externalTrafficPolicy="Local"
    )
    create(core, namespace, manifest)
    wait_address(core, namespace, "fw")
    wait_policy(networking, namespace, "lbipam-fw")

    text = " ".join(lbipam(control_plane, "why", f"{namespace}/fw").stdout.split())

    assert f"It holds {net}.0: lbipam gave it" in text
    assert f"{net}.0 from pool {plain}; claimed by Service {namespace}/fw" in text
    assert f"{gold} (4 available): not used: its serviceSelector or namespaceSelector" in text
    assert f"{manual} (4 available): not used: autoAssign is false" in text
    assert f"{plain} (3 available): may use: autoAssign, and its selectors match" in text
    assert f"{v6} (4 available): not used: it has no IPv4 addresses" in text
    assert "NetworkPolicy lbipam-fw: isolates pods app=fw in" in text
    assert "admits TCP/8080 from 10.0.0.0/8" in text
    assert "admits TCP/8080 from any pod in any namespace" in text
    assert "Normal AddressAllocated" in text

    create(core, namespace, service_manifest("pinned", loadBalancerIP=f"{manual_net}.2"))
    wait_address(core, namespace, "pinned")
    pinned = " ".join(lbipam(control_plane, "why", f"{namespace}/pinned").stdout.split())
    assert f"addresses: {manual_net}.2" in pinned
    assert f"{manual} (3 available): may use: the address it asked for lies in it" in pinned


def let_go_under_hold(
    core: client.CoreV1Api, networking: client.NetworkingV1Api, pools: Pools, namespace: str
) -> tuple[str, str, str]:
    """Service `gone` let go of an address its pool (a /30 of `net`) holds for it ten minutes:
    the pool, `net` and the address."""
    net = subnet()
    pool = pools.create([f"{net}.0/30"], name=f"{namespace}-held", releaseHold="10m")
    create(core, namespace, service_manifest("gone", annotations={POOL: pool}))
    [address] = wait_address(core, namespace, "gone")
    core.delete_namespaced_service("gone", namespace)
    eventually(lambda: held_since(networking, address), timeout=60, what=f"{address} held")
    return pool, net, address


def test_why_names_the_hold_the_reservation_and_the_namespace_limit_a_service_waits_for(
    control_plane: ControlPlane,
    core: client.CoreV1Api,
    networking: client.NetworkingV1Api,
    pools: Pools,
    namespace: str,
) -> None:
    _, _, address = let_go_under_hold(core, networking, pools, namespace)
    reserved_net, limited_net = subnet(), subnet()
    tenant = {"addresses": [f"{reserved_net}.0"], "namespace": namespace, "service": "web"}
    reserved = pools.create([f"{reserved_net}.0/30"], reservations=[tenant])
    limited = pools.create([f"{limited_net}.0/30"], name=f"{namespace}-lim", perNamespaceLimit=1)
    # "late" asks for the address held for "gone".
    create(core, namespace, service_manifest("late", annotations={IPS: address}))
    create(core, namespace, service_manifest("thief", annotations={IPS: f"{reserved_net}.0"}))
    create(core, namespace, service_manifest("first", annotations={POOL: limited}))
    [first] = wait_address(core, namespace, "first")
    create(core, namespace, service_manifest("second", annotations={POOL: limited}))
    waits = {
        "late": wait_reason(core, namespace, "late", "AddressHeld"),
        "thief": wait_reason(core, namespace, "thief", "AddressReserved"),
        "second": wait_reason(core, namespace, "second", "NamespaceLimitReached"),
    }

    said = {
        name: " ".join(lbipam(control_plane, "why", f"{namespace}/{name}").stdout.split())
        for name in waits
    }

    assert (
        "It waits: the address it asked for is held for the Service that let it go"
        in (said["late"])
    )
    assert (
        f"{address} is held for Service {namespace}/gone after its release, until "
        in (said["late"])
    )
    assert "It waits: the address it asked for is reserved by its pool for other" in said["thief"]
    assert (
        f'reserved by pool "{reserved}" reservations[0] for Service "{namespace}/web"'
        in (said["thief"])
    )
    assert (
        "It waits: its namespace holds as many addresses of the pool as the pool's"
        in (said["second"])
    )
    assert (
        f'namespace "{namespace}" holds 1 addresses of pool "{limited}", its perNamespaceLimit '
        f"is 1: {first} ({namespace}/first)"
    ) in said["second"]
    # The same words again from the objects in the cluster, as a new leader would decide.
    for name, condition in waits.items():
        decided = output(control_plane, "why", f"{namespace}/{name}")["decidedNow"]
        assert decided == {"reason": condition.reason, "message": condition.message}


def test_why_of_a_service_that_does_not_exist_fails(control_plane: ControlPlane) -> None:
    done = lbipam(control_plane, "why", "nowhere/nothing")
    assert done.returncode == 1
    assert done.stdout == "Service nowhere/nothing does not exist.\n"


def test_who_names_the_holder_its_claim_its_pool_and_the_history(
    control_plane: ControlPlane, core: client.CoreV1Api, pools: Pools, namespace: str
) -> None:
    one, address = first_holds_second_waits(core, pools, namespace)

    core.delete_namespaced_service("first", namespace)
    assert wait_address(core, namespace, "second") == [address]

    def both_allocations() -> subprocess.CompletedProcess[str] | None:
        done = lbipam(control_plane, "who", address)
        return done if done.stdout.count("AddressAllocated") == 2 else None

    shown = eventually(both_allocations, what="both allocations in the address's history")

    lines = shown.stdout.splitlines()
    assert lines[:4] == [
        address,
        f"  held by: Service {namespace}/second",
        f"  claim: IPAddress {address}, managed by lbipam.io, for {namespace}/second, "
        + lines[2].rsplit(", ", 1)[1],
        f"  pool: {one}",
    ]
    history = [line.split() for line in lines[5:]]
    assert history[0] == ["AGE", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert [h[2:4] for h in history[1:]] == [
        ["AddressAllocated", f"{namespace}/first"],
        ["AddressAllocated", f"{namespace}/second"],
    ]
    free = lbipam(control_plane, "who", "203.0.113.250")
    assert free.stdout.splitlines()[1:4] == [
        "  held by: nobody",
        "  claim: none (no IPAddress object names it)",
        "  pool: none (it lies in no IPPool)",
    ]


def test_who_and_pools_name_an_address_held_after_release_and_until_when(
    control_plane: ControlPlane,
    core: client.CoreV1Api,
    networking: client.NetworkingV1Api,
    pools: Pools,
    namespace: str,
) -> None:
    pool, net, address = let_go_under_hold(core, networking, pools, namespace)

    who = lbipam(control_plane, "who", address).stdout.splitlines()
    listed = lbipam(control_plane, "pools", "--show-services").stdout.splitlines()

    held_by, hold = who[1].split("; ", 1)
    assert held_by == "  held by: nobody"
    assert hold.startswith(f"{address} is held for Service {namespace}/gone after its release")
    assert hold.endswith(" (releaseHold)")
    at = listed.index(f"{pool}: {net}.0/30")
    assert listed[at + 1 : at + 3] == ["  no Service holds an address of it", f"  {hold}"]
    assert output(control_plane, "who", address)["heldAfterRelease"] == hold
    (shown,) = [p for p in output(control_plane, "pools", "--show-services") if p["name"] == pool]
    assert shown["heldAfterRelease"] == [{"address": address, "hold": hold}]


def pool_file(folder: Path, name: str, **spec: Any) -> Path:
    path = folder / f"{name}.yaml"
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "IPPool", "metadata": {"name": name}}
    path.write_text(yaml.safe_dump({**body, "spec": spec}))
    return path


def test_validate_checks_a_pool_against_what_the_cluster_holds(
    control_plane: ControlPlane,
    core: client.CoreV1Api,
    pools: Pools,
    namespace: str,
    tmp_path: Path,
) -> None:
    net = subnet()
    pool = pools.create([f"{net}.0/28"], name=f"{namespace}-live")
    create(core, namespace, service_manifest("web", loadBalancerIP=f"{net}.9"))
    wait_address(core, namespace, "web")
    selector = {"matchLabels": {"lbipam-test": namespace}}
    shrink = pool_file(tmp_path, pool, addresses=[f"{net}.0/29"], namespaceSelector=selector)
    overlap = pool_file(tmp_path, f"{namespace}-new", addresses=[f"{net}.4-{net}.20"])
    cluster_ips = pool_file(tmp_path, f"{namespace}-cips", addresses=["10.96.0.240/28"])
    good = pool_file(tmp_path, f"{namespace}-good", addresses=[f"{subnet()}.0/28"])
    typo = tmp_path / "typo.yaml"
    typo.write_text(good.read_text().replace("addresses:", "adresses: [10.0.0.1]\n  addresses:"))

    done = lbipam(control_plane, "validate", str(shrink), str(overlap), str(cluster_ips), str(good))
    refused = lbipam(control_plane, "validate", str(typo))

    text = " ".join(done.stdout.split())
    assert done.returncode == 1
    assert f"error: {pool}: the change takes addresses away from: {namespace}/web ({net}.9)" in text
    assert f'error: {namespace}-new: it overlaps the older pool "{pool}"' in text
    assert f"error: {namespace}-cips: it overlaps ServiceCIDR kubernetes" in text
    # A /28 without its network and broadcast addresses.
    assert row(done.stdout, str(good))[1:] == [f"{namespace}-good", "14", "ok"]
    assert f"Checked against the cluster at {control_plane.server}" in text
    assert refused.returncode == 1
    assert 'unknown field "spec.adresses"' in refused.stdout
    assert pools.get(pool)["spec"]["addresses"] == [f"{net}.0/28"], "validate changes nothing"
    assert lbipam(control_plane, "validate", str(good)).returncode == 0


def test_validate_refuses_a_pool_holding_a_node_address(
    control_plane: ControlPlane, core: client.CoreV1Api, namespace: str, tmp_path: Path
) -> None:
    net = subnet()
    node = client.V1Node(metadata=client.V1ObjectMeta(name=f"{namespace}-node"))
    core.create_node(node)
    try:
        status = {"status": {"addresses": [{"type": "InternalIP", "address": f"{net}.3"}]}}
        core.patch_node_status(f"{namespace}-node", status)
        path = pool_file(tmp_path, f"{namespace}-lan", addresses=[f"{net}.0/28"])

        done = lbipam(control_plane, "validate", str(path))

        assert done.returncode == 1
        assert f"it would hand out {net}.3, an address of node {namespace}-node" in done.stdout
    finally:
        core.delete_node(f"{namespace}-node")


def test_validate_without_a_cluster_checks_offline(tmp_path: Path) -> None:
    bad = pool_file(tmp_path, "bad", addresses=["192.168.1.0/33"])
    env = dict(os.environ, KUBECONFIG=str(tmp_path / "absent"))
    env.pop("KUBERNETES_SERVICE_HOST", None)
    done = subprocess.run(
        [str(BIN / "kubectl-lbipam"), "validate", str(bad)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert 'addresses[0] "192.168.1.0/33": not a valid CIDR' in done.stdout
    assert "Checked offline only (cluster not reachable:" in done.stdout


def test_a_user_without_read_rights_is_told_what_the_api_server_refused(
    control_plane: ControlPlane, core: client.CoreV1Api, namespace: str, tmp_path: Path
) -> None:
    account = client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="nobody"))
    core.create_namespaced_service_account(namespace, account)
    request = client.AuthenticationV1TokenRequest(spec={"audiences": []})
    token = core.create_namespaced_service_account_token("nobody", namespace, request).status.token
    ca = base64.b64encode(control_plane.pki.ca_cert.read_bytes()).decode()
    cluster = {"server": control_plane.server, "certificate-authority-data": ca}
    config = write_kubeconfig(tmp_path / "nobody", cluster, {"token": token})

    done = lbipam(control_plane, "pools", "--kubeconfig", str(config))

    assert done.returncode == 1
    assert done.stderr.startswith("kubectl lbipam: the API server refused: ")
    assert f"system:serviceaccount:{namespace}:nobody" in done.stderr
    assert "cannot list resource" in done.stderr

"""A user's view: pools, Services, and the addresses `kubectl get services` shows."""

from __future__ import annotations

from kubernetes import client

from tests.kit import (
    REPO,
    Kubectl,
    Pools,
    create,
    eventually,
    ingress_ips,
    load_yaml,
    our_condition,
    service_manifest,
    subnet,
    wait_address,
    wait_event,
    wait_reason,
    wait_service,
)


def test_the_guides_three_services_get_their_addresses(
    core: client.CoreV1Api, kubectl: Kubectl, pools: Pools, namespace: str
) -> None:
    pools.create(["192.168.10.0/24"], exclude=["192.168.10.1"], allowFirstLastIPs=False)
    expected = {
        # .0 is the network address, .1 excluded: the lowest usable address is .2.
        "sample-lb": ["192.168.10.2"],
        "sample-lb-fixip": ["192.168.10.100"],
        "sample-lb-fw": ["192.168.10.3"],
    }
    for doc in load_yaml(REPO / "deploy/examples/services.yaml"):
        doc["metadata"]["namespace"] = namespace
        create(core, namespace, doc)
        # One at a time, so "lowest free address" has one right answer per Service.
        name = doc["metadata"]["name"]
        assert wait_address(core, namespace, name) == expected[name]

    shown = kubectl("get", "services", "-n", namespace).stdout
    assert "192.168.10.100" in shown

    service = core.read_namespaced_service("sample-lb-fixip", namespace)
    condition = our_condition(service)
    assert (condition.status, condition.reason) == ("True", "Allocated")
    assert service.status.load_balancer.ingress[0].ip_mode == "VIP"
    assert (
        "192.168.10.100"
        in wait_event(core, namespace, "sample-lb-fixip", "AddressAllocated").message
    )


def test_pool_counts_are_live_in_kubectl_get_ippools(
    core: client.CoreV1Api, kubectl: Kubectl, pools: Pools, namespace: str
) -> None:
    pool = pools.create([f"{subnet()}.0/30"])
    pools.status(pool, total="4", allocated="0", available="4")
    create(core, namespace, service_manifest("web"))
    wait_address(core, namespace, "web")

    status = pools.status(pool, total="4", allocated="1", available="3")

    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Ready": "True",
        "Exhausted": "False",
        "OverlapsServiceCIDR": "False",
        "OverlapsNodeAddress": "False",
        "OverNamespaceLimit": "False",
    }
    row = kubectl("get", "ippools", pool).stdout.splitlines()
    assert row[0].split() == ["NAME", "TOTAL", "ALLOCATED", "AVAILABLE", "PRIORITY", "READY", "AGE"]
    assert row[1].split()[:6] == [pool, "4", "1", "3", "0", "True"]


def test_a_pool_of_one_address_leaves_the_second_service_pending_until_the_first_goes(
    core: client.CoreV1Api, pools: Pools, namespace: str
) -> None:
    net = subnet()
    pool = pools.create([f"{net}.7"])
    create(core, namespace, service_manifest("first"))
    assert wait_address(core, namespace, "first") == [f"{net}.7"]

    create(core, namespace, service_manifest("second"))
    condition = wait_reason(core, namespace, "second", "PoolExhausted")
    assert condition.status == "False"
    assert pool in condition.message
    assert wait_event(core, namespace, "second", "AllocationFailed").type == "Warning"
    pools.status(pool, available="0")
    assert pools.condition(pool, "Exhausted")["status"] == "True"

    core.delete_namespaced_service("first", namespace)

    assert wait_address(core, namespace, "second") == [f"{net}.7"]
    assert wait_reason(core, namespace, "second", "Allocated").status == "True"


def test_a_requested_address_is_honoured_from_the_annotation_and_the_field(
    core: client.CoreV1Api, pools: Pools, namespace: str
) -> None:
    net = subnet()
    pools.create([f"{net}.0/24"])
    create(
        core,
        namespace,
        service_manifest("by-annotation", annotations={"lbipam.io/ips": f"{net}.42"}),
    )
    create(core, namespace, service_manifest("by-field", loadBalancerIP=f"{net}.43"))

    assert wait_address(core, namespace, "by-annotation") == [f"{net}.42"]
    assert wait_address(core, namespace, "by-field") == [f"{net}.43"]


def test_a_requested_address_outside_every_pool_is_refused_with_a_reason(
    core: client.CoreV1Api, pools: Pools, namespace: str
) -> None:
    pools.create([f"{subnet()}.0/28"])
    create(core, namespace, service_manifest("outside", loadBalancerIP="203.0.113.9"))

    condition = wait_reason(core, namespace, "outside", "AddressNotInPool")

    assert "203.0.113.9" in condition.message
    assert ingress_ips(core.read_namespaced_service("outside", namespace)) == []


def test_a_requested_address_already_held_is_refused_naming_the_holder(
    core: client.CoreV1Api, pools: Pools, namespace: str
) -> None:
    net = subnet()
    pools.create([f"{net}.0/28"])
    create(core, namespace, service_manifest("owner", loadBalancerIP=f"{net}.5"))
    wait_address(core, namespace, "owner")
    create(core, namespace, service_manifest("thief", loadBalancerIP=f"{net}.5"))

    condition = wait_reason(core, namespace, "thief", "AddressInUse")

    assert "owner" in condition.message


def test_field_and_annotation_that_disagree_are_an_invalid_request(
    core: client.CoreV1Api, pools: Pools, namespace: str
) -> None:
    net = subnet()
    pools.create([f"{net}.0/28"])
    manifest = service_manifest(
        "confused", annotations={"lbipam.io/ips": f"{net}.3"}, loadBalancerIP=f"{net}.4"
    )
    create(core, namespace, manifest)

    condition = wait_reason(core, namespace, "confused", "InvalidRequest")

    assert f"{net}.3" in condition.message and f"{net}.4" in condition.message


def test_an_unknown_pool_name_is_reported(
    core: client.CoreV1Api, pools: Pools, namespace: str
) -> None:
    pools.create([f"{subnet()}.0/28"])
    create(core, namespace, service_manifest("lost", annotations={"lbipam.io/pool": "no-such"}))

    condition = wait_reason(core, namespace, "lost", "NoMatchingPool")

    assert "no-such" in condition.message


def test_pool_choice_by_annotation_labels_namespace_and_priority(
    core: client.CoreV1Api, pools: Pools, namespace: str
) -> None:
    low, high, picky, manual = subnet(), subnet(), subnet(), subnet()
    pools.create([f"{low}.0/28"], name=f"{namespace}-low", priority=1)
    pools.create([f"{high}.0/28"], name=f"{namespace}-high", priority=5)
    pools.create(
        [f"{picky}.0/28"],
        name=f"{namespace}-picky",
        priority=10,
        serviceSelector={"matchLabels": {"tier": "gold"}},
    )
    pools.create([f"{manual}.0/28"], name=f"{namespace}-manual", autoAssign=False, priority=99)
    # A pool hands out nothing until its finalizer is on: the choice is only by priority once
    # all four are ready.
    for name in pools.names:
        eventually(
            lambda name=name: pools.condition(name, "Ready").get("status") == "True",
            what=f"IPPool {name} ready",
        )

    create(core, namespace, service_manifest("plain"))
    create(core, namespace, service_manifest("gold", labels={"tier": "gold"}))
    create(
        core,
        namespace,
        service_manifest("named", annotations={"lbipam.io/pool": f"{namespace}-low"}),
    )
    create(core, namespace, service_manifest("manual", loadBalancerIP=f"{manual}.9"))

    assert wait_address(core, namespace, "plain") == [f"{high}.0"]
    assert wait_address(core, namespace, "gold") == [f"{picky}.0"]
    assert wait_address(core, namespace, "named") == [f"{low}.0"]
    assert wait_address(core, namespace, "manual") == [f"{manual}.9"]


def test_a_pool_for_another_namespace_is_not_used(
    core: client.CoreV1Api, pools: Pools, namespace: str
) -> None:
    pools.create([f"{subnet()}.0/28"], namespaceSelector={"matchLabels": {"team": "other"}})
    create(core, namespace, service_manifest("elsewhere"))

    wait_reason(core, namespace, "elsewhere", "NoMatchingPool")

    core.patch_namespace(namespace, {"metadata": {"labels": {"team": "other"}}})
    assert wait_address(core, namespace, "elsewhere")


def test_services_with_one_sharing_key_share_an_address_unless_ports_collide(
    core: client.CoreV1Api, pools: Pools, namespace: str
) -> None:
    net = subnet()
    pools.create([f"{net}.0/28"])
    sharing = {"lbipam.io/sharing-key": "web"}
    create(core, namespace, service_manifest("http", annotations=sharing))
    create(
        core,
        namespace,
        service_manifest("https", annotations=sharing, ports=[{"port": 443, "targetPort": 8443}]),
    )
    shared = wait_address(core, namespace, "http")
    assert wait_address(core, namespace, "https") == shared
    # Created only now: in the same second as http, "clash" would be the older by name and,
    # handled first, would win the address (a flake under load, not a bug).
    create(core, namespace, service_manifest("clash", annotations=sharing))
    condition = wait_reason(core, namespace, "clash", "PortConflict")
    assert "80" in condition.message


def test_require_dual_stack_gets_one_address_per_family(
    core: client.CoreV1Api, pools: Pools, namespace: str
) -> None:
    net = subnet()
    pools.create([f"{net}.0/28", "fd00:5a::/120"])
    create(core, namespace, service_manifest("dual", ipFamilyPolicy="RequireDualStack"))

    assert wait_address(core, namespace, "dual", count=2) == [f"{net}.0", "fd00:5a::"]


def test_require_dual_stack_without_an_ipv6_pool_fails_and_takes_nothing(
    core: client.CoreV1Api, pools: Pools, namespace: str
) -> None:
    pool = pools.create([f"{subnet()}.0/28"])
    create(core, namespace, service_manifest("dual", ipFamilyPolicy="RequireDualStack"))

    condition = wait_reason(core, namespace, "dual", "NoMatchingPool")

    assert "IPv6" in condition.message
    assert ingress_ips(core.read_namespaced_service("dual", namespace)) == []
    pools.status(pool, allocated="0")


def test_a_service_of_another_class_is_never_touched(
    core: client.CoreV1Api, pools: Pools, namespace: str
) -> None:
    pools.create([f"{subnet()}.0/28"])
    create(core, namespace, service_manifest("foreign", loadBalancerClass="example.com/other"))
    create(core, namespace, service_manifest("ours", loadBalancerClass="lbipam.io/lb"))
    wait_address(core, namespace, "ours")

    foreign = core.read_namespaced_service("foreign", namespace)
    assert ingress_ips(foreign) == []
    assert foreign.status.conditions is None
    assert [
        (e.reason, e.message)
        for e in core.list_namespaced_event(namespace).items
        if e.involved_object.name == "foreign"
    ] == []


def test_a_service_switched_to_cluster_ip_lets_its_address_go(
    core: client.CoreV1Api, pools: Pools, namespace: str
) -> None:
    net = subnet()
    pool = pools.create([f"{net}.0/28"])
    create(core, namespace, service_manifest("switch"))
    assert wait_address(core, namespace, "switch") == [f"{net}.0"]
    pools.status(pool, allocated="1")

    core.patch_namespaced_service(
        "switch", namespace, {"spec": {"type": "ClusterIP", "allocateLoadBalancerNodePorts": None}}
    )

    service = wait_service(
        core,
        namespace,
        "switch",
        lambda s: not ingress_ips(s) and our_condition(s) is None,
        what="status cleared",
    )
    assert service.spec.type == "ClusterIP"
    pools.status(pool, allocated="0")
    wait_event(core, namespace, "switch", "AddressReleased")


def test_a_deleted_service_frees_its_address_for_the_next(
    core: client.CoreV1Api, pools: Pools, namespace: str
) -> None:
    net = subnet()
    pools.create([f"{net}.0/28"])
    create(core, namespace, service_manifest("a"))
    assert wait_address(core, namespace, "a") == [f"{net}.0"]
    core.delete_namespaced_service("a", namespace)
    pools.status(pools.names[0], allocated="0")

    create(core, namespace, service_manifest("b"))

    assert wait_address(core, namespace, "b") == [f"{net}.0"]

"""Installing as a user does: `kubectl apply -k deploy/`, the operator's own RBAC, two replicas."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

from kubernetes import client

from tests.controlplane import ControlPlane
from tests.kit import (
    SHORT_LEASE,
    SYSTEM,
    Kubectl,
    Pools,
    create,
    eventually,
    ingress_ips,
    service_manifest,
    subnet,
    wait_address,
)
from tests.operator_process import OperatorProcess, leader_of


def test_the_base_applies_and_every_object_is_there(
    installed: None, kubectl: Kubectl, api: client.ApiClient
) -> None:
    deployment = client.AppsV1Api(api).read_namespaced_deployment("lbipam", SYSTEM)
    assert deployment.spec.replicas == 2
    container = deployment.spec.template.spec.containers[0]
    assert container.security_context.read_only_root_filesystem is True
    rules = client.RbacAuthorizationV1Api(api).read_cluster_role("lbipam").rules
    assert all("*" not in (r.verbs + (r.resources or [])) for r in rules)
    assert not [r for r in rules if "secrets" in (r.resources or [])]
    kubectl("get", "service/lbipam-metrics", "poddisruptionbudget/lbipam", "-n", SYSTEM)


def test_the_operator_works_with_only_its_own_rbac(
    installed: None,
    without_session_operator: None,
    control_plane: ControlPlane,
    core: client.CoreV1Api,
    networking: client.NetworkingV1Api,
    api: client.ApiClient,
    pools: Pools,
    namespace: str,
    operator_kubeconfig: Path,
) -> None:
    replica = OperatorProcess(
        control_plane,
        KUBECONFIG=str(operator_kubeconfig),
        LBIPAM_NAMESPACE=SYSTEM,
        LBIPAM_LEADER_ELECTION="true",
    ).start()
    try:
        pool = pools.create([f"{subnet()}.0/28"])
        create(
            core,
            namespace,
            service_manifest(
                "web", loadBalancerSourceRanges=["192.0.2.0/24"], externalTrafficPolicy="Local"
            ),
        )

        assert wait_address(core, namespace, "web")
        eventually(
            lambda: networking.list_namespaced_network_policy(namespace).items,
            what="the source-range policy",
        )
        pools.status(pool, allocated="1")
        lease = client.CoordinationV1Api(api).read_namespaced_lease("lbipam-leader", SYSTEM)
        assert lease.spec.holder_identity.endswith(f"-{replica.popen.pid}")  # type: ignore[union-attr]
        eventually(lambda: leader_of([replica]), what="the replica to report leading")
        replica.stop()  # SIGTERM: on the way out a leader hands its Lease over
        logs = replica.logs(lines=10_000)
        # A namespace another test is deleting refuses Events too; RBAC must refuse nothing.
        refused = [
            line
            for line in logs.splitlines()
            if ("Forbidden" in line or " 403" in line) and "NamespaceTerminating" not in line
        ]
        assert refused == [], logs
        assert "released the Lease" in logs
        lease = client.CoordinationV1Api(api).read_namespaced_lease("lbipam-leader", SYSTEM)
        assert not lease.spec.holder_identity  # type: ignore[union-attr]
    finally:
        replica.cleanup()


def test_two_replicas_one_leads_and_the_other_takes_over_when_it_is_killed(
    without_session_operator: None,
    control_plane: ControlPlane,
    core: client.CoreV1Api,
    pools: Pools,
    namespace: str,
) -> None:
    replicas = [OperatorProcess(control_plane, **SHORT_LEASE).start() for _ in range(2)]
    try:
        pools.create([f"{subnet()}.0/24"])
        leader = eventually(lambda: leader_of(replicas), what="a leader")
        follower = next(r for r in replicas if r is not leader)
        created: list[str] = []

        def burst() -> None:
            for i in range(60):
                create(core, namespace, service_manifest(f"s{i}"))
                created.append(f"s{i}")
                time.sleep(0.02)

        creator = threading.Thread(target=burst)
        creator.start()
        eventually(lambda: len(created) >= 20, what="the burst to be under way")
        assert "allocated" not in follower.logs(lines=10_000)
        leader.kill()
        killed = time.monotonic()
        eventually(lambda: leader_of([follower]), timeout=10, what="the follower to lead")
        failover = time.monotonic() - killed
        creator.join()

        for name in created:
            wait_address(core, namespace, name)
        held = Counter(
            ip for s in core.list_namespaced_service(namespace).items for ip in ingress_ips(s)
        )
        assert [ip for ip, n in held.items() if n > 1] == []
        assert len(held) == 60
        print(f"failover after kill -9: {failover:.2f}s")
        assert failover < 6 + 2, f"failover took {failover:.1f}s with a 6s lease"
    finally:
        for replica in replicas:
            replica.cleanup()

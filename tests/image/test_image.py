"""A cluster admin builds the image from the Dockerfile and runs it as deploy/ describes.

The image is built with buildah from the checkout, FROM a Debian base made with mmdebstrap
(no registry is reachable here). Its containers run with the Deployment's pod spec and the
operator's own ServiceAccount token, against the test control plane, with the RBAC of
`kubectl apply -k deploy/` and nothing more.
"""

from __future__ import annotations

import hashlib
import json
import signal
import time
from pathlib import Path

import pytest
from kubernetes import client

from tests.image import Container, Image
from tests.image.build import ca_bundle
from tests.image.conftest import Replicas
from tests.image.engine import buildah_argv, host_ulimits, podman_argv, run
from tests.kit import (
    SHORT_LEASE,
    SYSTEM,
    Pools,
    create,
    eventually,
    service_manifest,
    subnet,
    wait_address,
)
from tests.operator_process import leader_of

# The first test pays for the build: minutes on a cold, loaded machine.
pytestmark = [pytest.mark.image, pytest.mark.timeout(1800)]
MB = 1_000_000


def lease_holder(api: client.ApiClient) -> str:
    lease = client.CoordinationV1Api(api).read_namespaced_lease("lbipam-leader", SYSTEM)
    return lease.spec.holder_identity or ""


def leader_and_follower(first: Container, second: Container) -> tuple[Container, Container]:
    """Wait for one to lead; returns both once each answers /readyz (the leader once rebuilt)."""
    leader = eventually(lambda: leader_of([first, second]), timeout=30, what="a leader")
    follower = second if leader is first else first
    for replica in (leader, follower):
        replica.wait_ready()
    return leader, follower


def test_the_image_is_small_unprivileged_and_holds_neither_build_tools_nor_the_build_ca(
    image: Image,
) -> None:
    print(f"\nimage adds {image.added / MB:.1f} MB to its base ({image.base_size / MB:.1f} MB)")
    # The goal is under 60 MB (bench/image.py prints the number); this only catches a blow-up.
    assert image.added < 90 * MB

    config = json.loads(run(podman_argv("image", "inspect", image.name)))[0]["Config"]
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["lbipam", "run"]

    # The allocator the Dockerfile sets up is the one the interpreter runs on.
    script = "print(open('/proc/self/maps').read())"
    probe = ["run", "--rm", "--network=none", *host_ulimits(), "--entrypoint=python"]
    probe += [image.name, "-c", script]
    assert "/libmimalloc.so.2" in run(podman_argv(*probe))

    container = run(buildah_argv("from", "--pull-never", image.name)).strip()
    try:
        root = Path(run(buildah_argv("mount", container)).strip())
        assert not (root / "src").exists(), "the builder's sources reached the final image"
        assert list((root / "opt/lbipam/bin").glob("pip*")) == []
        assert not list((root / "opt/lbipam/lib").glob("python3*/site-packages/kubernetes")), (
            "the operator needs no Kubernetes client"
        )
        ca = ca_bundle()
        if ca is not None:
            # The CA reached the build as a secret: no layer may hold a copy of it.
            size, digest = ca.stat().st_size, hashlib.sha256(ca.read_bytes()).digest()
            copies = [
                path
                for path in root.rglob("*")
                if path.is_file()
                and not path.is_symlink()
                and path.stat().st_size == size
                and hashlib.sha256(path.read_bytes()).digest() == digest
            ]
            assert copies == [], f"the build machine's CA bundle is in the image: {copies}"
    finally:
        run(buildah_argv("rm", container))


def test_two_containers_elect_one_leader_that_hands_out_addresses_until_it_is_killed(
    replicas: Replicas,
    api: client.ApiClient,
    core: client.CoreV1Api,
    pools: Pools,
    namespace: str,
) -> None:
    first, second = replicas(2)
    leader, follower = leader_and_follower(first, second)
    assert lease_holder(api) == leader.identity
    print(f"\ncontainer start to /readyz on the leader: {leader.ready_after:.2f}s")
    for replica in (first, second):
        assert replica.http(replica.health_port, "/healthz")[0] == 200
        assert "lbipam_allocations_total" in replica.metrics()

    pools.create([f"{subnet()}.0/28"])
    create(core, namespace, service_manifest("web"))
    assert wait_address(core, namespace, "web")

    # The Deployment asks for JSON logs; the ServiceAccount's RBAC was enough for everything.
    def logged() -> list[dict[str, str]]:
        return [json.loads(line) for line in leader.logs(lines=10_000).splitlines()]

    # The address is written before the line saying so.
    eventually(lambda: any(": allocated " in e["message"] for e in logged()), what="the log line")
    lines = logged()
    assert not [e for e in lines if "Forbidden" in e["message"] or " 403" in e["message"]]

    killed = leader.signal(signal.SIGKILL)
    eventually(lambda: follower.leading(), timeout=20, what="the follower to take over")
    failover = time.monotonic() - killed
    print(f"\nfailover after kill -9 of the leader's container: {failover:.2f}s")
    assert failover < float(SHORT_LEASE["LBIPAM_LEASE_DURATION"]) + 6
    assert leader.wait_exit() != 0
    follower.wait_ready()  # the new leader has rebuilt its state from the cluster
    create(core, namespace, service_manifest("api"))
    assert wait_address(core, namespace, "api")
    assert lease_holder(api) == follower.identity


def test_sigterm_stops_the_leader_cleanly_and_hands_the_lease_over(
    replicas: Replicas,
    api: client.ApiClient,
    core: client.CoreV1Api,
    pools: Pools,
    namespace: str,
) -> None:
    first, second = replicas(2)
    leader, follower = leader_and_follower(first, second)
    pools.create([f"{subnet()}.0/28"])

    sent = leader.signal(signal.SIGTERM)
    gone = leader.wait_gone()
    print(f"\nSIGTERM to exit of the leader: {gone - sent:.2f}s")
    assert leader.wait_exit() == 0, leader.logs()
    assert gone - sent < 10, "the goal is under 2 s: a rolling update pays this per pod"
    assert lease_holder(api) in ("", follower.identity), "the Lease was not handed over"
    eventually(lambda: follower.leading(), timeout=10, what="the follower to take over")
    print(f"SIGTERM to the follower leading: {time.monotonic() - sent:.2f}s")
    create(core, namespace, service_manifest("web"))
    assert wait_address(core, namespace, "web")

    sent = follower.signal(signal.SIGTERM)
    follower.wait_gone()
    assert follower.wait_exit() == 0, follower.logs()

"""The container image in numbers: build time, size, cold start, SIGTERM to exit, failover.

Run from the repository root as root: ``.venv/bin/python -m bench.image``. It uses the image
kit of tests/image/ (buildah and podman on the kit's own vfs storage, a Debian base made
with mmdebstrap) and a fresh local control plane with `kubectl apply -k deploy/`; the
containers run with the Deployment's pod spec, its ServiceAccount token and default Lease
timing (15 s / 10 s / 2 s), so the failover numbers are the ones a user gets.

- build, cold: `buildah bud --no-cache` (the base already made; pip downloads everything);
  build, cached: the same again with the layer cache and an unchanged checkout (the tests
  skip even that when an image of the same inputs exists).
- size: bytes the image adds to its base.
- cold start: `podman start` of a created container (vfs copies the image at create, which
  is not counted) until it both leads and answers /readyz.
- SIGTERM to exit: the signal sent to the leader's PID on the host until that PID is gone.
- handover: the same SIGTERM until the other container says it leads.
- failover: SIGKILL of the leader's PID until the other container says it leads.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from kubernetes import client, config

from tests.controlplane import ControlPlane, running_control_plane
from tests.image import Container, build_image, ensure_tools, sweep, write_credentials
from tests.image.build import REPO
from tests.kit import SYSTEM, eventually, service_account_token
from tests.operator_process import leader_of


def install(plane: ControlPlane) -> Path:
    """`kubectl apply -k deploy/` and the Deployment's ServiceAccount credentials."""
    kubectl = [str(plane.kubectl), f"--kubeconfig={plane.kubeconfig}"]
    subprocess.run([*kubectl, "apply", "-f", str(REPO / "deploy/namespace.yaml")], check=True)
    subprocess.run([*kubectl, "apply", "-k", str(REPO / "deploy")], check=True)
    core = client.CoreV1Api(config.new_client_from_config(str(plane.kubeconfig)))
    folder = Path(tempfile.mkdtemp(prefix="lbipam-bench-")) / "serviceaccount"
    return write_credentials(
        folder, service_account_token(core), plane.pki.ca_cert.read_bytes(), SYSTEM
    )


def leading_and_ready(container: Container) -> bool:
    return container.leading() and container.http(container.health_port, "/readyz")[0] == 200


def summary(values: list[float]) -> str:
    median = statistics.median(values)
    return f"median {median:.2f} s (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions of each timing")
    args = parser.parse_args()

    ensure_tools()
    sweep()
    cold = build_image(reuse=False, use_layers=False)
    cached = build_image(reuse=False)
    build_image()  # the tests' path: an image of the same inputs is taken as it is
    print(f"build, cold (base already made): {cold.seconds:.0f} s")
    print(f"build, every layer cached (checkout unchanged): {cached.seconds:.0f} s")
    print(f"size: {cached.size / 1e6:.1f} MB, base {cached.base_size / 1e6:.1f} MB, ")
    print(f"      the image adds {cached.added / 1e6:.1f} MB to its base")

    with running_control_plane() as plane:
        credentials = install(plane)
        made: list[Container] = []

        def replica() -> Container:
            container = Container(cached.name, plane, credentials).create()
            made.append(container)
            return container

        def alone() -> tuple[float, float]:
            """Cold start to a ready leader, then SIGTERM to exit, of a container alone."""
            container = replica().start()
            eventually(lambda: leading_and_ready(container), timeout=120, what="a ready leader")
            started = time.monotonic() - container.started
            sent = container.signal(signal.SIGTERM)
            stopped = container.wait_gone() - sent
            assert container.wait_exit() == 0, container.logs()
            return started, stopped

        def stop_leader(sig: int) -> float:
            pair = [replica().start() for _ in range(2)]
            leader = eventually(lambda: leader_of(pair), timeout=120, what="a leader")
            other = next(c for c in pair if c is not leader)
            eventually(lambda: other.http(other.health_port, "/readyz")[0] == 200, timeout=60)
            sent = leader.signal(sig)
            eventually(other.leading, timeout=60, interval=0.02, what="the other to lead")
            seconds = time.monotonic() - sent
            other.signal(signal.SIGTERM)
            other.wait_gone()
            return seconds

        try:
            starts, stops = zip(*(alone() for _ in range(args.runs)), strict=True)
            print(f"cold start to a ready leader: {summary(list(starts))}")
            print(f"SIGTERM to exit of the leader: {summary(list(stops))}")
            for name, sig in (
                ("handover after SIGTERM", signal.SIGTERM),
                ("failover after SIGKILL", signal.SIGKILL),
            ):
                print(f"{name}: {summary([stop_leader(sig) for _ in range(args.runs)])}")
        finally:
            for container in made:
                container.remove()


if __name__ == "__main__":
    main()

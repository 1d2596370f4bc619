"""`python -m tests.controlplane build|up|demo`: build the binaries, run a local control plane,
or run it with the CRD, the example pools and Services, and the operator in the foreground."""

from __future__ import annotations

import argparse
import contextlib
import signal
import subprocess
import sys
import threading
from pathlib import Path

from .build import ensure_binaries, ensure_kube_router
from .cluster import ControlPlane, die_with_parent, running_control_plane

REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.controlplane",
        description="Build or run the local Kubernetes control plane used by lbipam's tests.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "build",
        help="build (or reuse) etcd, kube-apiserver, kcm, kubectl, kube-proxy and kube-router",
    )
    sub.add_parser("up", help="start a control plane and keep it running until Ctrl-C")
    sub.add_parser("demo", help="a control plane with the examples applied and lbipam running")
    args = parser.parse_args(argv)

    if args.command == "build":
        print(ensure_binaries())
        print(ensure_kube_router())
        return 0

    if args.command == "demo":
        with running_control_plane() as plane:
            return demo(plane)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with running_control_plane() as plane:
        print(f"control plane ready at {plane.server}", flush=True)
        print(f"  export KUBECONFIG={plane.kubeconfig}")
        print(f"  alias kubectl={plane.kubectl}")
        print("Ctrl-C stops it and removes its files.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


def demo(plane: ControlPlane) -> int:
    """Apply the CRD and the examples, then run the operator until Ctrl-C."""
    kubectl = [str(plane.kubectl), f"--kubeconfig={plane.kubeconfig}"]
    subprocess.run([*kubectl, "apply", "-f", str(REPO / "deploy/crds/ippools.yaml")], check=True)
    plane.wait_established("ippools.lbipam.io")
    subprocess.run([*kubectl, "apply", "-f", str(REPO / "deploy/examples")], check=True)
    print(
        f"""
Local control plane at {plane.server}; lbipam runs below (Ctrl-C stops everything).
In another terminal:
  export KUBECONFIG={plane.kubeconfig}
  alias kubectl={plane.kubectl}
  kubectl get services -A --watch
  kubectl get ippools
  kubectl describe service sample-lb
""",
        flush=True,
    )
    lbipam = str(Path(sys.executable).parent / "lbipam")
    with contextlib.suppress(KeyboardInterrupt):
        return subprocess.run(
            [lbipam, "run"], env=plane.env(), preexec_fn=die_with_parent
        ).returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())

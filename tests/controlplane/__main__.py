"""`python -m tests.controlplane build|up`: build the binaries, or run a local control plane."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading

from .build import ensure_binaries
from .cluster import running_control_plane


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.controlplane",
        description="Build or run the local Kubernetes control plane used by lbipam's tests.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build (or reuse) etcd, kube-apiserver, kcm and kubectl")
    sub.add_parser("up", help="start a control plane and keep it running until Ctrl-C")
    args = parser.parse_args(argv)

    if args.command == "build":
        print(ensure_binaries())
        return 0

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


if __name__ == "__main__":
    sys.exit(main())

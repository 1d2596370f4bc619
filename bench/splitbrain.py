"""Split brain, measured: two replicas that both lead, N Services created as fast as possible.

Run from the repository root: ``.venv/bin/python -m bench.splitbrain [--services N]``.
For each of LBIPAM_ADDRESS_CLAIMS=off and =ipaddress, on a fresh control plane: two
`lbipam run` processes with leader election off, one /16 pool, N Services created from a
thread pool, and a watch that checks after every Service event whether any address is shown
by two Services at that moment. Prints one JSON line per mode and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes import client, config, watch

from bench.observer import REPO
from tests.controlplane import ControlPlane, running_control_plane
from tests.operator_process import OperatorProcess

NAMESPACE = "splitbrain"


def _service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": name},
            "ports": [{"port": 80}],
            "allocateLoadBalancerNodePorts": False,
        },
    }


def _pool() -> dict[str, Any]:
    return {
        "apiVersion": "lbipam.io/v1alpha1",
        "kind": "IPPool",
        "metadata": {"name": "splitbrain"},
        "spec": {"addresses": ["198.18.0.0/16"]},
    }


class Watcher(threading.Thread):
    """Every status change of every Service; the worst moment is what counts."""

    def __init__(self, core: client.CoreV1Api, count: int) -> None:
        super().__init__(daemon=True)
        self.core, self.count = core, count
        self.shown: dict[str, list[str]] = {}
        self.double: set[str] = set()
        self.worst = 0
        self.events = 0

    def run(self) -> None:
        stream = watch.Watch()
        for event in stream.stream(self.core.list_namespaced_service, NAMESPACE):
            service = event["object"]
            lb = service.status.load_balancer
            ips = [i.ip for i in (lb.ingress or [])] if lb else []
            self.shown[service.metadata.name] = ips
            self.events += 1
            held = Counter(ip for shown in self.shown.values() for ip in shown)
            twice = {ip for ip, n in held.items() if n > 1}
            self.double |= twice
            self.worst = max(self.worst, len(twice))
            if sum(map(bool, self.shown.values())) >= self.count and not twice:
                stream.stop()


def run(plane: ControlPlane, claims: str, count: int, wait_s: float) -> dict[str, Any]:
    kubectl = [str(plane.kubectl), f"--kubeconfig={plane.kubeconfig}"]
    subprocess.run([*kubectl, "apply", "-f", str(REPO / "deploy/crds")], check=True)
    plane.wait_established("ippools.lbipam.io")
    api = config.new_client_from_config(str(plane.kubeconfig))
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    core.create_namespace({"metadata": {"name": NAMESPACE}})
    custom.create_cluster_custom_object("lbipam.io", "v1alpha1", "ippools", _pool())
    settings = {"LBIPAM_ADDRESS_CLAIMS": claims, "LBIPAM_LOG_LEVEL": "info"}
    replicas = [OperatorProcess(plane, **settings).start() for _ in range(2)]
    watcher = Watcher(core, count)
    watcher.start()
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(16) as pool:
            list(
                pool.map(
                    lambda i: core.create_namespaced_service(NAMESPACE, _service(f"s{i}")),
                    range(count),
                )
            )
        watcher.join(wait_s)
        elapsed = time.monotonic() - started
    finally:
        for replica in replicas:
            replica.cleanup()
    served = sum(map(bool, watcher.shown.values()))
    return {
        "claims": claims,
        "services": count,
        "served": served,
        "seconds": round(elapsed, 1),
        "status_events": watcher.events,
        "addresses_ever_shown_twice": len(watcher.double),
        "most_at_one_moment": watcher.worst,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--wait", type=float, default=600, help="seconds to wait for all")
    args = parser.parse_args()
    rows = []
    for claims in ("off", "ipaddress"):
        with running_control_plane() as plane:
            rows.append(run(plane, claims, args.services, args.wait))
        print(json.dumps(rows[-1]), flush=True)
    print("| claims | Services | served | s | addresses ever on two Services | most at once |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['claims']} | {r['services']} | {r['served']} | {r['seconds']} | "
            f"{r['addresses_ever_shown_twice']} | {r['most_at_one_moment']} |"
        )


if __name__ == "__main__":
    main()

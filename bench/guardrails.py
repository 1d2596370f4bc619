"""What the guardrails (deploy/guardrails.yaml) add to each of lbipam's writes, on vs off.

Run from the repository root: ``.venv/bin/python -m bench.guardrails``. One fresh control plane
with `kubectl apply -k deploy/`; every write is made with lbipam's ServiceAccount token, as the
operator makes it. Rounds alternate the policies off (bindings deleted) and on (bindings
applied), in alternating order, so the drift of a shared machine hits both sides alike.

Each kind of write meets one rule:
- `service status`: the operator's server-side apply of status.loadBalancer and its condition,
  on Services that also carry another controller's condition (lbipam-service-status); one
  request in flight, and as a burst (`--burst` in flight).
- `networkpolicy update` (lbipam-networkpolicies), `ippool finalizer` add or remove
  (lbipam-ippools), `ipaddress create` (lbipam-ipaddresses and
  lbipam-ipaddresses-outside-servicecidrs, against one ServiceCIDR), `ipaddress delete`
  (lbipam-ipaddresses).

Client side: latency per request, median and p99, on and off. Server side: the API server's
own `apiserver_validating_admission_policy_check_duration_seconds`, the mean time one policy
takes to check one request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from typing import Any

import yaml

from bench.api import MERGE, Api, Credentials, service_manifest, status_apply
from bench.cluster import credentials, latency_summary, machine
from bench.observer import REPO
from bench.report import machine_line
from tests.controlplane import ControlPlane
from tests.kit import ip_address

NAMESPACE = "bench"
SYSTEM = "lbipam-system"
POOL = "bench"
GUARDRAILS = REPO / "deploy" / "guardrails.yaml"
BINDINGS = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings"
ADDRESSES = "/apis/networking.k8s.io/v1/ipaddresses"
POLICIES_PATH = f"/apis/networking.k8s.io/v1/namespaces/{NAMESPACE}/networkpolicies"
DRY = {"dryRun": "All"}
_PLUGIN = re.compile(
    r"^apiserver_admission_controller_admission_duration_seconds_(?P<part>sum|count)"
    r'\{(?P<labels>[^}]*name="ValidatingAdmissionPolicy"[^}]*)\} (?P<value>\S+)$'
)

Write = Callable[[int], Awaitable[None]]


def bindings() -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(GUARDRAILS.read_text()) if d]
    return [d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding"]


def plugin_time(metrics: str) -> tuple[float, float]:
    """(Seconds, requests) the ValidatingAdmissionPolicy admission step took, from /metrics.

    The API server times each policy only when it refuses or fails; this step's histogram
    covers every request, the policies' checks included.
    """
    totals = {"sum": 0.0, "count": 0.0}
    for line in metrics.splitlines():
        match = _PLUGIN.match(line)
        if match is not None and 'type="validate"' in match["labels"]:
            totals[match["part"]] += float(match["value"])
    return totals["sum"], totals["count"]


def network_policy(index: int, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": f"lbipam-s{index}",
            "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/managed-by": "lbipam"},
        },
        "spec": {
            "podSelector": {"matchLabels": {"app": f"s{index}"}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [{"ipBlock": {"cidr": "192.0.2.0/24"}}], "ports": [{"port": port}]}
            ],
        },
    }


class Bench:
    """lbipam's writes, timed, on one control plane set up as `kubectl apply -k deploy/` does."""

    def __init__(self, plane: ControlPlane, admin: Api, lbipam: Api, services: int) -> None:
        self.plane = plane
        self.admin = admin
        self.lbipam = lbipam
        self.services = services
        self.claims: deque[str] = deque()  # made by the creates, taken back by the deletes

    async def setup(self) -> None:
        await self.admin.create_namespace(NAMESPACE)
        foreign = {
            "type": "example.com/Healthy",
            "status": "True",
            "reason": "Probed",
            "message": "set by another controller",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }
        for i in range(self.services):
            await self.admin.create_service(NAMESPACE, service_manifest(f"s{i}"))
            await self.admin.request(
                "PATCH",
                f"/api/v1/namespaces/{NAMESPACE}/services/s{i}/status",
                {"status": {"conditions": [foreign]}},
                content_type=MERGE,
            )
            await self.admin.request("POST", POLICIES_PATH, network_policy(i, 80))
        await self.admin.create_pool(POOL, ["198.18.0.0/16"])

    # --- lbipam's writes ------------------------------------------------------------

    async def service_status(self, i: int) -> None:
        name = f"s{i % self.services}"
        ip = f"198.18.{i // 250 % 250}.{i % 250 + 1}"
        await self.lbipam.apply_service_status(
            NAMESPACE, name, status_apply(NAMESPACE, name, ip, POOL)
        )

    async def networkpolicy_update(self, i: int) -> None:
        index = i % self.services
        body = network_policy(index, 1000 + i % 1000)
        await self.lbipam.request("PUT", f"{POLICIES_PATH}/lbipam-s{index}", body)

    async def ippool_finalizer(self, i: int) -> None:
        finalizers = ["lbipam.io/protection"] if i % 2 == 0 else []
        await self.lbipam.request(
            "PATCH",
            f"/apis/lbipam.io/v1alpha1/ippools/{POOL}",
            {"metadata": {"finalizers": finalizers}},
            content_type=MERGE,
        )

    async def ipaddress_create(self, i: int) -> None:
        name = f"198.19.{i // 250 % 250}.{i % 250 + 1}"
        await self.lbipam.request("POST", ADDRESSES, ip_address(name, "lbipam.io", NAMESPACE, "s0"))
        self.claims.append(name)

    async def ipaddress_delete(self, _: int) -> None:
        await self.lbipam.request("DELETE", f"{ADDRESSES}/{self.claims.popleft()}")

    # --- policies on and off --------------------------------------------------------

    async def switch(self, on: bool) -> None:
        for binding in bindings():
            if on:
                await self.admin.request("POST", BINDINGS, binding, ok=(409,))
            else:
                await self.admin.request(
                    "DELETE", f"{BINDINGS}/{binding['metadata']['name']}", ok=(404,)
                )
        deadline = time.monotonic() + 60
        while await self._refusals() != (len(bindings()) if on else 0):
            if time.monotonic() > deadline:
                raise TimeoutError("the API server did not take up the bindings")
            await asyncio.sleep(0.2)

    async def _refusals(self) -> int:
        """How many of five forbidden dry runs (one per policy) the API server refuses."""
        probes = [
            ("POST", POLICIES_PATH, {"metadata": {"name": "probe"}, "spec": {"podSelector": {}}}),
            ("POST", ADDRESSES, ip_address("198.19.255.1", "ipallocator.k8s.io", NAMESPACE, "s0")),
            ("POST", ADDRESSES, ip_address("10.96.0.200", "lbipam.io", NAMESPACE, "s0")),
        ]
        merges = [
            f"/api/v1/namespaces/{NAMESPACE}/services/s0/status",
            f"/apis/lbipam.io/v1alpha1/ippools/{POOL}",
        ]
        answers = [
            await self.lbipam.request(method, path, body, params=DRY, ok=(403,))
            for method, path, body in probes
        ] + [
            await self.lbipam.request(
                "PATCH",
                path,
                {"metadata": {"labels": {"probe": "x"}}},
                content_type=MERGE,
                params=DRY,
                ok=(403,),
            )
            for path in merges
        ]
        return sum(answer is None for answer in answers)

    def plugin_time(self) -> tuple[float, float]:
        return plugin_time(self.plane.get("/metrics", timeout=30)[1])


async def timed(write: Write, first: int, count: int, in_flight: int) -> tuple[list[float], float]:
    """Latency of each of `count` writes, and the wall time of all of them."""
    gate = asyncio.Semaphore(in_flight)
    latencies: list[float] = []

    async def one(i: int) -> None:
        async with gate:
            started = time.perf_counter()
            await write(i)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(first, first + count)))
    return latencies, time.perf_counter() - started


KINDS = (
    # kind of write, the rules it meets
    ("service status", "lbipam-service-status"),
    ("service status burst", "lbipam-service-status"),
    ("networkpolicy update", "lbipam-networkpolicies"),
    ("ippool finalizer", "lbipam-ippools"),
    ("ipaddress create", "lbipam-ipaddresses, lbipam-ipaddresses-outside-servicecidrs"),
    ("ipaddress delete", "lbipam-ipaddresses"),
)


async def measure(bench: Bench, rounds: int, writes: int, burst: int) -> dict[str, Any]:
    runs: dict[str, tuple[Write, int]] = {
        "service status": (bench.service_status, 1),
        "service status burst": (bench.service_status, burst),
        "networkpolicy update": (bench.networkpolicy_update, 1),
        "ippool finalizer": (bench.ippool_finalizer, 1),
        "ipaddress create": (bench.ipaddress_create, 1),
        "ipaddress delete": (bench.ipaddress_delete, 1),
    }
    latencies: dict[tuple[str, str], list[float]] = defaultdict(list)
    walls: dict[tuple[str, str], float] = defaultdict(float)
    step: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    offset = 0
    for round_ in range(rounds):
        for on in (False, True) if round_ % 2 == 0 else (True, False):
            mode = "on" if on else "off"
            await bench.switch(on)
            for kind, (write, in_flight) in runs.items():
                # A warm-up, so connections and caches are in place before timing.
                await timed(write, offset, 20, in_flight)
                offset += 20
                seconds, count = bench.plugin_time()
                measured, wall = await timed(write, offset, writes, in_flight)
                offset += writes
                latencies[kind, mode] += measured
                walls[kind, mode] += wall
                after = bench.plugin_time()
                step[kind, mode][0] += after[0] - seconds
                step[kind, mode][1] += after[1] - count
    results: dict[str, Any] = {}
    for kind, rules in KINDS:
        row: dict[str, Any] = {"rules": rules, "in_flight": runs[kind][1]}
        for mode in ("off", "on"):
            values = latencies[kind, mode]
            seconds, count = step[kind, mode]
            row[mode] = {
                **latency_summary(values),
                "writes_per_s": round(len(values) / walls[kind, mode], 1),
                "admission_step_us": round(1e6 * seconds / count, 1) if count else None,
            }
        row["added_p50_ms"] = round(row["on"]["p50_ms"] - row["off"]["p50_ms"], 2)
        results[kind] = row
    return {"writes": results}


def markdown(report: dict[str, Any]) -> str:
    rows = [
        machine_line(report["machine"]),
        f"Load average at end: {', '.join(f'{x:.2f}' for x in report['loadavg_at_end'])}.",
        f"{report['rounds']} rounds (off/on in turn) of {report['per_round']} writes per kind "
        "and mode, as lbipam's ServiceAccount. Client latency per request in ms; the API "
        "server's ValidatingAdmissionPolicy admission step per request in µs.",
        "",
        "| write | rules met | in flight | p50 off | p50 on | added p50 | p99 off | p99 on "
        "| writes/s off | writes/s on | step µs off | step µs on |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for kind, row in report["writes"].items():
        off, on = row["off"], row["on"]
        rows.append(
            f"| {kind} | {row['rules']} | {row['in_flight']} | {off['p50_ms']} | {on['p50_ms']} "
            f"| {row['added_p50_ms']} | {off['p99_ms']} | {on['p99_ms']} "
            f"| {off['writes_per_s']} | {on['writes_per_s']} "
            f"| {off['admission_step_us']} | {on['admission_step_us']} |"
        )
    return "\n".join(rows)


def install(plane: ControlPlane) -> str:
    """`kubectl apply -k deploy/` as an admin does; returns a token of lbipam's ServiceAccount."""
    kubectl = [str(plane.kubectl), f"--kubeconfig={plane.kubeconfig}"]
    for args in (
        ["apply", "-f", str(REPO / "deploy/namespace.yaml")],
        ["apply", "-k", str(REPO / "deploy")],
    ):
        subprocess.run([*kubectl, *args], check=True, capture_output=True)
    plane.wait_established("ippools.lbipam.io")
    return subprocess.run(
        [*kubectl, "create", "token", "lbipam", "-n", SYSTEM, "--duration=2h"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


async def run(plane: ControlPlane, token: str, args: argparse.Namespace) -> dict[str, Any]:
    admin_credentials = credentials(plane)
    lbipam_credentials = Credentials(**{**vars(admin_credentials), "token": token})
    async with Api(admin_credentials) as admin, Api(lbipam_credentials) as lbipam:
        bench = Bench(plane, admin, lbipam, args.services)
        await bench.setup()
        report = {"machine": machine(), "rounds": args.rounds, "per_round": args.writes}
        report |= await measure(bench, args.rounds, args.writes, args.burst)
        report["loadavg_at_end"] = os.getloadavg()
        return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="off/on pairs (default 4)")
    parser.add_argument("--writes", type=int, default=300, help="per kind, mode and round")
    parser.add_argument("--burst", type=int, default=50, help="status writes in flight")
    parser.add_argument("--services", type=int, default=100, help="Services written to")
    args = parser.parse_args()
    plane = ControlPlane()
    try:
        plane.start()
        report = asyncio.run(run(plane, install(plane), args))
    finally:
        plane.cleanup()
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "guardrails.json").write_text(json.dumps(report, indent=2))
    text = markdown(report)
    (out / "guardrails.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()

"""What 1,000 Nodes' heartbeats cost the operator, with the Node handler's filter and without.

Run from the repository root: ``.venv/bin/python -m bench.nodes``. Per variant, one fresh
control plane with the operator (one pool), then `--nodes` Node objects (InternalIPs outside
the pool, as on most clusters), a quiet spell, then heartbeats: each Node's Ready condition
patched through `nodes/status` every `--interval` seconds (the kubelet's default
nodeStatusUpdateFrequency is 10 s), for `--seconds`.

Reported per variant: the operator's CPU seconds per 1,000 heartbeats (the mean rate of a
quiet spell before and after subtracted; raw too), its RSS at the end and its peak; for
`filtered`, then a restart of the operator with the Nodes present (time to ready). `filtered`
is lbipam as shipped (a heartbeat ends at comparing the Node's addresses with the known ones);
`unfiltered` runs `bench/unfiltered.py`, which sends every Node event on to the pools.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import procstat
from bench.api import Api
from bench.cluster import RUNTIME, Cluster, cluster, machine, restart, runtime_python
from bench.observer import REPO

NODE_NET = int(ipaddress.IPv4Address("172.16.0.0"))  # outside the bench pool (10.0.0.0/8)
STRATEGIC = "application/strategic-merge-patch+json"
IN_FLIGHT = 20
VARIANTS = {"filtered": None, "unfiltered": [str(REPO / "bench" / "unfiltered.py"), "run"]}


def node(index: int) -> dict[str, Any]:
    address = str(ipaddress.IPv4Address(NODE_NET + index + 1))
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": f"bench-node-{index:05d}"},
        "status": {"addresses": [{"type": "InternalIP", "address": address}]},
    }


def heartbeat(now: str) -> dict[str, Any]:
    ready = {
        "type": "Ready",
        "status": "True",
        "reason": "KubeletReady",
        "message": "kubelet is posting ready status",
        "lastHeartbeatTime": now,
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    return {"status": {"conditions": [ready]}}


async def create_nodes(api: Api, count: int) -> None:
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(index: int) -> None:
        async with gate:
            await api.request("POST", "/api/v1/nodes", node(index))

    await asyncio.gather(*(one(i) for i in range(count)))


async def heartbeats(api: Api, count: int, interval: float, seconds: float) -> int:
    """Every Node's status patched every `interval` s, evenly spread; how many went through."""
    gate = asyncio.Semaphore(IN_FLIGHT)
    done = 0
    rate = count / interval
    started = time.monotonic()

    async def one(index: int) -> None:
        nonlocal done
        async with gate:
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            path = f"/api/v1/nodes/{node(index)['metadata']['name']}/status"
            await api.request("PATCH", path, heartbeat(now), content_type=STRATEGIC)
            done += 1

    tasks = []
    for sent in range(int(rate * seconds)):
        delay = started + sent / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(sent % count)))
    await asyncio.gather(*tasks)
    return done


async def quiet_rate(c: Cluster, pid: int, seconds: float) -> float:
    """The operator's CPU seconds per second with nothing happening."""
    before = procstat.cpu_seconds(pid)
    await asyncio.sleep(seconds)
    return (procstat.cpu_seconds(pid) - before) / seconds


async def run_variant(name: str, args: argparse.Namespace) -> dict[str, Any]:
    async with cluster(operator=True, wrapper=VARIANTS[name]) as c:
        pid = c.controller_pid
        assert pid is not None
        started = time.monotonic()
        await create_nodes(c.api, args.nodes)
        created_s = time.monotonic() - started
        await asyncio.sleep(args.settle)
        quiet_before = await quiet_rate(c, pid, args.quiet)
        cpu_before, began = procstat.cpu_seconds(pid), time.monotonic()
        sent = await heartbeats(c.api, args.nodes, args.interval, args.seconds)
        await asyncio.sleep(2)  # the last events reach the operator
        elapsed = time.monotonic() - began
        cpu = procstat.cpu_seconds(pid) - cpu_before
        used = procstat.usage(pid)
        quiet_after = await quiet_rate(c, pid, args.quiet)
        # The quiet rate (the pool status loop, Kopf's own timers) is no heartbeat's cost.
        idle = (quiet_before + quiet_after) / 2
        result: dict[str, Any] = {
            "variant": name,
            "nodes": args.nodes,
            "nodes_created_s": round(created_s, 1),
            "heartbeats": sent,
            "heartbeats_per_s": round(sent / elapsed, 1),
            "operator_cpu_s": round(cpu, 2),
            "operator_cpu_s_per_s": round(cpu / elapsed, 4),
            "quiet_cpu_s_per_s": [round(quiet_before, 4), round(quiet_after, 4)],
            "cpu_s_per_1000_heartbeats": round((cpu - idle * elapsed) / sent * 1000, 3),
            "cpu_s_per_1000_heartbeats_raw": round(cpu / sent * 1000, 3),
            "rss_mib": round(used.rss_mib, 1),
            "peak_rss_mib": round(used.hwm_mib, 1),
        }
        if VARIANTS[name] is None:
            # Nodes are a Kopf index: does the start-up wait for it grow with them?
            result["restart_with_nodes"] = await restart(c, "nodes")
        return result


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    await asyncio.to_thread(runtime_python, RUNTIME)
    return [await run_variant(name, args) for name in args.variants]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=10.0, help="s between a Node's beats")
    parser.add_argument("--seconds", type=float, default=90.0, help="how long heartbeats go on")
    parser.add_argument("--settle", type=float, default=30.0, help="s after the Nodes' creation")
    parser.add_argument("--quiet", type=float, default=20.0, help="s of quiet measured")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", default=str(REPO / "bench/results/nodes.json"))
    args = parser.parse_args()
    results = asyncio.run(run(args))
    for result in results:
        print(json.dumps(result))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()

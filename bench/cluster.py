"""End-to-end scale benchmark on the local control plane; prints JSON and a markdown table.

Run from the repository root: ``.venv/bin/python -m bench.cluster`` (add ``--large`` for
N=20,000). Every measurement gets a fresh control plane (etcd, kube-apiserver,
kube-controller-manager on loopback), so no run inherits another's objects.

- floor: a bare aiohttp client creates N LoadBalancer Services and server-side-applies each
  one's status (the operator's exact write), with as many requests in flight as the
  operator's own client allows (its connection pool).
- floor + claims + Event: the same, with exactly lbipam's writes: the address claim before
  the status write and the AddressAllocated Event after it, in the background. lbipam's
  true floor (`--no-writes-floor` skips it).
- lbipam: the same N Services, created at the floor's rate, with `lbipam run` handing out
  the addresses. A separate watcher process (bench.watcher) notes, per Service, the first
  watch event that shows an address. Latency is from the creator's wall clock just before
  its create call to that event (creationTimestamp has 1 s resolution; latency from it is
  reported too, as `latency_from_creation_timestamp_ms`).
- MetalLB and Cilium (bench.contenders): the same N Services at the same rate, each peer on
  its own fresh control plane, measured the same way.
- idle: each controller's RSS 60 s after it started with 0 Services.
- restart and pool edit, idle latency, a py-spy profile of a separate burst, and the API
  requests per Service from the API server's `apiserver_request_total`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import apicounts, procstat, profiling
from bench.api import Api, Credentials, ingress_ips, service_manifest, status_apply
from bench.contenders import PEERS, Peer, PeerProcess, build_all, kubectl, wait_addressed
from bench.observer import REPO, Observer
from bench.report import markdown
from lbipam.background import Background
from lbipam.kube.client import CONNECTIONS
from tests.controlplane import ControlPlane
from tests.controlplane.cluster import die_with_parent
from tests.operator_process import ALLOCATOR, OperatorProcess

NAMESPACE = "bench"
POOL = "bench"
POOL_ADDRESSES = ["10.0.0.0/8"]
GROWN_ADDRESSES = ["10.0.0.0/8", "11.0.0.0/8"]
FIRST_IP = int(ipaddress.IPv4Address("10.0.0.1"))
# The operator's requests in flight are bounded by its client's connection pool (Kopf itself
# runs one worker per object without limit): the floor gets the same bound.
CONCURRENCY = CONNECTIONS
OPERATOR_ENV = {"LBIPAM_LOG_LEVEL": "info"}  # the default a user runs with
SETTLE_S = 2.0  # after the last address: background Events and pool status flushes land


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def latency_summary(seconds: Iterable[float]) -> dict[str, float]:
    values = list(seconds)
    return {
        "count": len(values),
        "p50_ms": round(1000 * percentile(values, 50), 1),
        "p90_ms": round(1000 * percentile(values, 90), 1),
        "p99_ms": round(1000 * percentile(values, 99), 1),
        "max_ms": round(1000 * max(values, default=float("nan")), 1),
    }


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        mem_kib = int(meminfo.readline().split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(mem_kib / 2**20, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg_at_start": os.getloadavg(),
        "commit": _commit(),
    }


def _commit() -> str:
    """The checkout's commit, with "+dirty" when operator/ has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "operator"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"
    return head + ("+dirty" if dirty else "")


def ip_for(index: int) -> str:
    return str(ipaddress.IPv4Address(FIRST_IP + index))


@dataclass
class Cluster:
    """One fresh control plane with the bench namespace watched, and maybe the operator."""

    plane: ControlPlane
    api: Api
    observer: Observer
    operator: OperatorProcess | None = None
    peer: PeerProcess | None = None
    extra_pids: dict[str, int] = field(default_factory=dict)

    @property
    def controller_pid(self) -> int | None:
        """The process handing out addresses: lbipam or a peer."""
        if self.operator is not None and self.operator.popen is not None:
            return self.operator.popen.pid
        return self.peer.pid if self.peer is not None else None

    def pids(self) -> dict[str, int]:
        pids = {"bench": os.getpid(), **self.extra_pids}
        for name, process in (("apiserver", self.plane.apiserver), ("etcd", self.plane.etcd)):
            if process.popen is not None:
                pids[name] = process.popen.pid
        if self.observer.pid is not None:
            pids["watcher"] = self.observer.pid
        if self.controller_pid is not None:
            pids["controller"] = self.controller_pid
        return pids

    def cpu(self) -> dict[str, float]:
        return {name: procstat.cpu_seconds(pid) for name, pid in self.pids().items()}

    async def api_counts(self) -> Counter[apicounts.Key]:
        status, text = await asyncio.to_thread(self.plane.get, "/metrics", 30)
        if status != 200:
            raise RuntimeError(f"/metrics: HTTP {status}")
        return apicounts.parse(text)

    async def addresses(self) -> dict[str, tuple[str, ...]]:
        listed = await self.api.list_services(NAMESPACE)
        return {item["metadata"]["name"]: tuple(ingress_ips(item)) for item in listed["items"]}


def credentials(plane: ControlPlane) -> Credentials:
    pki = plane.pki
    return Credentials(plane.server, str(pki.ca_cert), str(pki.admin_cert), str(pki.admin_key))


RUNTIME = REPO / "build" / "bench-runtime"
BASELINE = REPO / "build" / "bench-baseline"


def runtime_python(
    venv: Path = RUNTIME, source: Path = REPO, interpreter: str = sys.executable
) -> str:
    """A venv with lbipam and its runtime dependencies only, as the container image has them.

    Not the bench's own venv: with the test extra installed, Kopf imports the `kubernetes`
    client it finds (19 MiB the operator would never carry in production).
    """
    python = venv / "bin" / "python"
    if not python.exists():
        # Not from the checkout, whose `operator/` would shadow the stdlib module.
        venv_argv = [interpreter, "-m", "venv", str(venv)]
        subprocess.run(venv_argv, check=True, cwd=tempfile.gettempdir())
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-e", str(source)], check=True, cwd=tempfile.gettempdir())
    return str(python)


def baseline_python(revision: str, interpreter: str = "") -> str:
    """lbipam as of `revision`, in a venv of its own: the "before" of a change, in the same run.

    On `interpreter` when given (another Python version), else on this one.
    """
    source = BASELINE / "src"
    if source.exists():
        subprocess.run(["git", "worktree", "remove", "--force", str(source)], cwd=REPO, check=True)
    add = ["git", "worktree", "add", "--detach", str(source), revision]
    subprocess.run(add, cwd=REPO, check=True, capture_output=True)
    venv = BASELINE / ("venv-" + Path(interpreter).name if interpreter else "venv")
    return runtime_python(venv, source, interpreter or sys.executable)


class RuntimeOperator(OperatorProcess):
    """`lbipam run` on the runtime venv's Python; `argv` may wrap it in a profiler."""

    def __init__(
        self,
        plane: ControlPlane,
        argv: list[str] | None = None,
        claims: bool = True,
        python: Path = RUNTIME / "bin" / "python",
        glibc: bool = False,
    ) -> None:
        super().__init__(plane, **OPERATOR_ENV)
        if not claims:
            self.env["LBIPAM_ADDRESS_CLAIMS"] = "off"
        if glibc:  # pymalloc and glibc's malloc, as before the image shipped mimalloc
            for name in ALLOCATOR:
                self.env.pop(name)
        self.argv = argv or ["-m", "lbipam.cli", "run"]
        self.python = python

    def start(self, wait: bool = True) -> OperatorProcess:
        with open(self.log_path, "ab") as log:
            # Not from the checkout: its folder `operator/` would shadow the stdlib module.
            self.popen = subprocess.Popen(
                [str(self.python), *self.argv],
                cwd=tempfile.gettempdir(),
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        if wait:
            self.wait_ready()
        return self


def cprofiled(output: Path) -> list[str]:
    return ["-m", "cProfile", "-o", str(output), "-m", "lbipam.cli", "run"]


def heap_traced(output: Path) -> list[str]:
    # As a script, so its folder and not the checkout is first on sys.path.
    return [str(REPO / "bench" / "heap.py"), "run", str(output)]


async def wait_pool_status(api: Api, generation: int | None = None, wait_s: float = 60) -> float:
    """Seconds until the operator has written the pool's status (for `generation`)."""
    started = time.monotonic()
    while time.monotonic() - started < wait_s:
        pool = await api.get_pool(POOL)
        status = pool.get("status") or {}
        if status.get("total") and (
            generation is None or status.get("observedGeneration") == generation
        ):
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise TimeoutError(f"IPPool {POOL} status not written in {wait_s}s")


@contextlib.asynccontextmanager
async def cluster(
    operator: bool,
    wrapper: list[str] | None = None,
    peer: Peer | None = None,
    claims: bool = True,
    python: Path = RUNTIME / "bin" / "python",
    glibc: bool = False,
) -> AsyncIterator[Cluster]:
    plane = ControlPlane()
    observer: Observer | None = None
    process: OperatorProcess | None = None
    peer_process: PeerProcess | None = None
    try:
        await asyncio.to_thread(plane.start)
        creds = credentials(plane)
        async with Api(creds, connections=CONCURRENCY) as api:
            await api.create_namespace(NAMESPACE)
            if operator:
                crd = str(REPO / "deploy/crds/ippools.yaml")
                await asyncio.to_thread(kubectl, plane, "apply", "-f", crd)
                await asyncio.to_thread(plane.wait_established, "ippools.lbipam.io")
                await api.create_pool(POOL, POOL_ADDRESSES)
                process = RuntimeOperator(plane, wrapper, claims, python, glibc)
                await asyncio.to_thread(process.start)
                await wait_pool_status(api)
            if peer is not None:
                peer_process = PeerProcess(peer, plane)
                await peer_process.start(api)
                # No pool status to wait for in common: a first Service addressed says ready.
                await wait_addressed(api)
            observer = Observer(creds, NAMESPACE)
            await observer.start()
            yield Cluster(plane, api, observer, process, peer_process)
    finally:
        if observer is not None:
            await observer.stop()
        if process is not None:
            await asyncio.to_thread(process.cleanup)
        if peer_process is not None:
            await asyncio.to_thread(peer_process.cleanup)
        await asyncio.to_thread(plane.cleanup)


async def burst(
    c: Cluster,
    n: int,
    *,
    write_status: bool,
    rate: float | None,
    claim: bool = False,
    event: bool = False,
    spy: profiling.SpyRecorder | None = None,
    wait_s: float | None = None,
) -> dict[str, Any]:
    """Create n Services (and, for the floor, claim each one's address if `claim`, then apply
    its status, then post its Event in the background if `event`, as the operator does);
    measure until all of them were seen with an address."""
    names = [f"svc-{i:05d}" for i in range(n)]
    started: dict[str, float] = {}
    indexes = iter(range(n))
    events = Background()
    api_before = await c.api_counts()
    loadavg = os.getloadavg()
    cpu_before = c.cpu()
    if spy is not None:
        spy.start()
    t_start = time.time()

    async def worker() -> None:
        for i in indexes:
            if rate is not None:
                delay = t_start + i / rate - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            name = names[i]
            started[name] = time.time()
            created = await c.api.create_service(NAMESPACE, service_manifest(name))
            if claim:
                await c.api.create_claim(NAMESPACE, name, ip_for(i))
            if write_status:
                body = status_apply(NAMESPACE, name, ip_for(i), POOL)
                await c.api.apply_service_status(NAMESPACE, name, body)
            if event:
                events.start(c.api.post_allocated_event(created, ip_for(i), POOL))

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    t_created = time.time()
    wait_s = max(120.0, n / 20) if wait_s is None else wait_s
    addressed = await c.observer.until_count(set(names), wait_s=wait_s)
    await events.drain(wait_s)
    profile = spy.stop() if spy is not None else None
    seen = [c.observer.seen[name] for name in names if name in c.observer.seen]
    t_end = max((s.seen for s in seen), default=time.time())
    await asyncio.sleep(SETTLE_S)
    cpu_after = c.cpu()
    api_after = await c.api_counts()
    wall = t_end - t_start
    result: dict[str, Any] = {
        "n": n,
        "loadavg_at_start": [round(x, 2) for x in loadavg],
        "loadavg_1m_after": round(os.getloadavg()[0], 2),
        "addressed": addressed,
        "distinct_addresses": len({s.ip for s in seen}),
        "paced_at_per_s": None if rate is None else round(rate, 1),
        "create_phase_s": round(t_created - t_start, 2),
        "wall_s": round(wall, 2),
        "services_per_s": round(addressed / wall, 1),
        "waited_after_creates_s": round(wait_s, 1),
        "latency": latency_summary(
            c.observer.seen[name].seen - started[name] for name in names if name in c.observer.seen
        ),
        "latency_from_creation_timestamp_ms": latency_summary(s.seen - s.created for s in seen),
        "cpu_s": {k: round(cpu_after[k] - cpu_before.get(k, 0.0), 2) for k in cpu_after},
        "api_requests": apicounts.delta(api_before, api_after),
    }
    result["api_requests_per_service"] = {
        k: round(v / n, 3) for k, v in result["api_requests"].items() if v >= n / 100
    }
    if c.controller_pid is not None:
        usage = procstat.usage(c.controller_pid)
        result["controller"] = {
            "cpu_s": result["cpu_s"]["controller"],
            "cpu_ms_per_service": round(
                1000 * result["cpu_s"]["controller"] / max(addressed, 1), 2
            ),
            "cpu_s_since_start": round(usage.cpu_s, 2),
            "rss_mib": round(usage.rss_mib, 1),
            "peak_rss_mib": round(usage.hwm_mib, 1),
        }
    if profile is not None:
        result["profile"] = profile
    return result


async def probe(c: Cluster, name: str, wait_s: float = 60) -> float:
    """Create one Service; the wall-clock time at which the watcher saw it addressed."""
    await c.api.create_service(NAMESPACE, service_manifest(name))
    return (await c.observer.address_of(name, wait_s)).seen


def changed(before: dict[str, tuple[str, ...]], after: dict[str, tuple[str, ...]]) -> int:
    return sum(1 for name, ips in before.items() if after.get(name) != ips)


async def restart(c: Cluster, label: str) -> dict[str, Any]:
    """Stop the operator, start a new one; time until /readyz and a new Service is addressed."""
    assert c.operator is not None and c.operator.popen is not None
    before = await c.addresses()
    old = procstat.usage(c.operator.popen.pid)
    t_stop = time.monotonic()
    await asyncio.to_thread(c.operator.cleanup)
    stop_s = time.monotonic() - t_stop
    process = RuntimeOperator(c.plane)
    t0 = time.time()
    await asyncio.to_thread(process.start, False)
    c.operator = process
    assert process.popen is not None
    while True:
        if process.popen.poll() is not None:
            raise RuntimeError(f"operator exited:\n{process.logs()}")
        with contextlib.suppress(OSError):
            status, _ = await asyncio.to_thread(process.http, process.health_port, "/readyz")
            if status == 200:
                break
        await asyncio.sleep(0.02)
    ready_s = time.time() - t0
    addressed_s = await probe(c, f"probe-{label}") - t0
    after = await c.addresses()
    usage = procstat.usage(process.popen.pid)
    return {
        "services_holding": sum(1 for ips in before.values() if ips),
        "old_operator_peak_rss_mib": round(old.hwm_mib, 1),
        "stop_s": round(stop_s, 2),
        "readyz_s": round(ready_s, 2),
        "probe_addressed_s": round(addressed_s, 2),
        "ready_s": round(max(ready_s, addressed_s), 2),
        "addresses_changed": changed(before, after),
        "operator_cpu_s_to_ready": round(usage.cpu_s, 2),
        "operator_peak_rss_mib": round(usage.hwm_mib, 1),
    }


async def pool_edit(c: Cluster) -> dict[str, Any]:
    """Grow the pool under a running operator: status catch-up, a new Service, nothing moved."""
    assert c.operator is not None and c.operator.popen is not None
    before = await c.addresses()
    cpu_before = procstat.cpu_seconds(c.operator.popen.pid)
    t0 = time.time()
    patched = await c.api.patch_pool(POOL, {"addresses": GROWN_ADDRESSES})
    generation = int(patched["metadata"]["generation"])
    patched_s = time.time() - t0
    seen, waited_s = await asyncio.gather(
        probe(c, "probe-pool-edit"), wait_pool_status(c.api, generation)
    )
    pool = await c.api.get_pool(POOL)
    after = await c.addresses()
    return {
        "addresses": GROWN_ADDRESSES,
        "probe_addressed_s": round(seen - t0, 2),
        "status_observed_s": round(patched_s + waited_s, 2),
        "pool_total": pool["status"].get("total"),
        "pool_allocated": pool["status"].get("allocated"),
        "addresses_changed": changed(before, after),
        "operator_cpu_s": round(procstat.cpu_seconds(c.operator.popen.pid) - cpu_before, 2),
    }


async def idle(c: Cluster, count: int) -> dict[str, Any]:
    """One Service at a time on a quiet system."""
    await asyncio.sleep(5)  # let the burst's echoes (events, pool status, watch backlog) pass
    latencies: list[float] = []
    for i in range(count):
        name = f"idle-{i:04d}"
        t0 = time.time()
        latencies.append(await probe(c, name, wait_s=30) - t0)
        await asyncio.sleep(0.05)
    return latency_summary(latencies)


async def run_floor(n: int, claim: bool = False, event: bool = False) -> dict[str, Any]:
    async with cluster(operator=False) as c:
        result = await burst(c, n, write_status=True, rate=None, claim=claim, event=event)
    label = "floor + claims" if claim else "floor"
    label += " + Event" if event else ""
    log(f"{label} N={n}: {result['services_per_s']}/s, p99 {result['latency']['p99_ms']} ms")
    return result


async def run_lbipam(
    n: int,
    rate: float | None,
    *,
    idle_count: int = 0,
    restarts: bool = False,
    profile_dir: Path | None = None,
    heap_out: Path | None = None,
    claims: bool = True,
    baseline: str | None = None,
    python: str = str(RUNTIME / "bin" / "python"),
    glibc: bool = False,
) -> dict[str, Any]:
    spy_binary = profiling.py_spy() if profile_dir is not None else None
    cprofile = None
    if profile_dir is not None and spy_binary is None:
        cprofile = profile_dir / f"operator-{n}.prof"
    wrapper = cprofiled(cprofile) if cprofile is not None else None
    if heap_out is not None:
        wrapper = heap_traced(heap_out)
    async with cluster(
        operator=True, wrapper=wrapper, claims=claims, python=Path(python), glibc=glibc
    ) as c:
        assert c.operator is not None and c.operator.popen is not None
        if heap_out is not None:
            c.operator.popen.send_signal(signal.SIGUSR2)  # start tracing allocations
        spy = None
        if spy_binary is not None and profile_dir is not None:
            raw = profile_dir / f"operator-{n}.pyspy.txt"
            spy = profiling.SpyRecorder(spy_binary, c.operator.popen.pid, raw)
        result = await burst(c, n, write_status=False, rate=rate, spy=spy)
        label = f"lbipam at {baseline}" if baseline else "lbipam"
        label += "" if claims else ", claims off"
        label += ", on glibc and pymalloc" if glibc else ""
        log(f"{label} N={n}: {result['services_per_s']}/s, p99 {result['latency']['p99_ms']} ms")
        if heap_out is not None:
            result["heap"] = await asyncio.to_thread(heap_dump, c.operator, heap_out)
        if restarts:
            result["restart"] = await restart(c, "restart")
            log(f"restart: {result['restart']}")
            result["pool_edit"] = await pool_edit(c)
            log(f"pool edit: {result['pool_edit']}")
            result["restart_after_pool_edit"] = await restart(c, "restart-2")
            log(f"restart after pool edit: {result['restart_after_pool_edit']}")
        if idle_count:
            result["idle"] = await idle(c, idle_count)
            log(f"idle: {result['idle']}")
        if cprofile is not None:
            c.operator.stop()  # cProfile writes its file on a clean exit
    if cprofile is not None and cprofile.exists():
        result["profile"] = profiling.summarize_cprofile(cprofile)
    return result


def heap_dump(operator: OperatorProcess, out: Path, wait_s: float = 300) -> Any:
    """Ask the tracemalloc-wrapped operator for its live heap; wait for the file."""
    assert operator.popen is not None
    out.unlink(missing_ok=True)
    operator.popen.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            return json.loads(out.read_text())  # renamed into place once complete
        time.sleep(1)
    raise TimeoutError(f"no heap dump in {out} after {wait_s}s")


def import_costs() -> Any:
    """RSS after each layer of imports, in a fresh interpreter (bench/heap.py imports)."""
    argv = [str(RUNTIME / "bin" / "python"), str(REPO / "bench" / "heap.py"), "imports"]
    done = subprocess.run(argv, cwd=tempfile.gettempdir(), check=True, capture_output=True)
    return json.loads(done.stdout)


async def run_peer(peer: Peer, n: int, rate: float | None) -> dict[str, Any]:
    async with cluster(operator=False, peer=peer) as c:
        assert c.peer is not None
        result = await burst(c, n, write_status=False, rate=rate, wait_s=peer.wait_s)
        c.peer.check()
    log(f"{peer.label} N={n}: {result['services_per_s']}/s, p99 {result['latency']['p99_ms']} ms")
    return result


async def idle_rss(peer: Peer | None, seconds: float) -> dict[str, Any]:
    """A controller with 0 Services: its memory `seconds` after it started."""
    loadavg = [round(x, 2) for x in os.getloadavg()]
    async with cluster(operator=peer is None, peer=peer) as c:
        pid = c.controller_pid
        assert pid is not None
        started = procstat.started_at(pid)
        await asyncio.sleep(max(0.0, started + seconds - time.time()))
        usage = procstat.usage(pid)
    label = "lbipam" if peer is None else peer.label
    log(f"idle {label}: {usage.rss_mib:.1f} MiB after {seconds:.0f} s")
    return {
        "loadavg_at_start": loadavg,
        "after_s": seconds,
        "rss_mib": round(usage.rss_mib, 1),
        "peak_rss_mib": round(usage.hwm_mib, 1),
        "cpu_s": round(usage.cpu_s, 2),
    }


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.large:
        sizes.append(20_000)
    peers = [PEERS[key] for key in args.peers.split(",") if key]
    await asyncio.to_thread(runtime_python)
    baseline = ""
    if args.baseline:
        baseline = await asyncio.to_thread(baseline_python, args.baseline, args.baseline_python)
    if peers:
        await asyncio.to_thread(build_all)
    out_dir = Path(args.out).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "machine": machine(),
        "concurrency": CONCURRENCY,
        "latency_from": "creator wall clock just before the create call",
        "pool": POOL_ADDRESSES,
        "peers": {peer.key: peer.label for peer in peers},
        "baseline": args.baseline,
        "baseline_python": args.baseline_python,
        "baseline_on_glibc": args.baseline_on_glibc,
        "sizes": {},
    }
    if args.idle_rss:
        report["idle_rss"] = {"lbipam": await idle_rss(None, args.idle_rss)}
        for peer in peers:
            report["idle_rss"][peer.key] = await idle_rss(peer, args.idle_rss)
        save(report, Path(args.out))
    for n in sizes:
        floor = await run_floor(n)
        rate = None if args.no_pace else floor["services_per_s"]
        sized: dict[str, Any] = {"floor": floor}
        sized["lbipam"] = await run_lbipam(
            n,
            rate,
            idle_count=args.idle if n == sizes[0] else 0,
            restarts=n == args.restart_at,
        )
        if args.writes_floor:
            sized["floor_writes"] = await run_floor(n, claim=True, event=True)
        if args.baseline:
            sized["lbipam_baseline"] = await run_lbipam(
                n, rate, baseline=args.baseline, python=baseline, glibc=args.baseline_on_glibc
            )
        if args.claims_cost:
            sized["lbipam_claims_off"] = await run_lbipam(n, rate, claims=False)
            sized["floor_claims"] = await run_floor(n, claim=True)
        for peer in peers:
            if peer.wait_s is not None and n > args.throttled_max_n:
                continue  # as shipped, a throttled peer would need most of an hour here
            sized[peer.key] = await run_peer(peer, n, rate)
        sized["ratio"] = {
            key: round(result["services_per_s"] / floor["services_per_s"], 3)
            for key, result in sized.items()
            if key != "floor"
        }
        report["sizes"][str(n)] = sized
        save(report, Path(args.out))  # a long run interrupted keeps what it measured
    if args.heap_n:
        pace = report["sizes"].get(str(args.heap_n), {}).get("floor", {})
        report["imports"] = import_costs()
        report["heap"] = await run_lbipam(
            args.heap_n, pace.get("services_per_s"), heap_out=out_dir.resolve() / "heap.json"
        )
    if args.profile_n:
        pace = report["sizes"].get(str(args.profile_n), {}).get("floor", {})
        report["profiled_burst"] = await run_lbipam(
            args.profile_n, pace.get("services_per_s"), profile_dir=out_dir.resolve()
        )
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__)
    parser.add_argument("--sizes", default="1000,5000", help="comma-separated N (1000,5000)")
    parser.add_argument("--large", action="store_true", help="also N=20000")
    parser.add_argument("--idle", type=int, default=200, help="idle Services, one at a time")
    parser.add_argument(
        "--restart-at", type=int, default=5000, help="N after which to restart (5000)"
    )
    parser.add_argument(
        "--profile-n", type=int, default=5000, help="N of the profiled burst (0: none)"
    )
    parser.add_argument(
        "--no-pace", action="store_true", help="create as fast as possible, not at floor rate"
    )
    parser.add_argument(
        "--peers",
        default=",".join(PEERS),
        help=f"comma-separated peers to run beside lbipam ({','.join(PEERS)}; '' for none)",
    )
    parser.add_argument(
        "--throttled-max-n",
        type=int,
        default=5000,
        help="largest N for a peer run as shipped, with its client throttled (5000)",
    )
    parser.add_argument(
        "--no-claims-cost",
        dest="claims_cost",
        action="store_false",
        help="skip lbipam with LBIPAM_ADDRESS_CLAIMS=off and the floor that also claims",
    )
    parser.add_argument(
        "--no-writes-floor",
        dest="writes_floor",
        action="store_false",
        help="skip the floor + claims + Event (lbipam's exact writes from a bare client)",
    )
    parser.add_argument(
        "--heap-n", type=int, default=0, help="N of a burst under tracemalloc (0: none)"
    )
    parser.add_argument(
        "--idle-rss", type=float, default=60, help="seconds before idle RSS is read (0: skip)"
    )
    parser.add_argument(
        "--baseline",
        default="",
        metavar="REV",
        help="also run lbipam as of git revision REV, for a before/after in one run",
    )
    parser.add_argument(
        "--baseline-python",
        default="",
        metavar="PYTHON",
        help="the interpreter of the baseline's venv (another Python version; default: this one)",
    )
    parser.add_argument(
        "--baseline-on-glibc",
        action="store_true",
        help="run the baseline on pymalloc and glibc's malloc, not the image's mimalloc",
    )
    parser.add_argument("--out", default=str(REPO / "bench/results/cluster.json"))
    return parser.parse_args(argv)


def save(report: dict[str, Any], out: Path) -> None:
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report))


def cli(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = asyncio.run(main(args))
    save(report, Path(args.out))
    print(json.dumps(report, indent=2))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(cli())

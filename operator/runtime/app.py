"""Assembles the process: logging, metrics and health servers, leader election, then Kopf."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import signal
import socket
import time

import kopf
import uvloop
from kopf._core.reactor.inventory import ResourceMemories

import lbipam.handlers.namespaces
import lbipam.handlers.nodes
import lbipam.handlers.policies
import lbipam.handlers.pools
import lbipam.handlers.servicecidrs
import lbipam.handlers.services  # noqa: F401 - importing registers the handlers with Kopf
from lbipam import __version__
from lbipam.ha.leader import LeaderElector
from lbipam.ha.term import Term
from lbipam.kube.client import Api, connect
from lbipam.kube.leases import Leases
from lbipam.memory import fix_mmap_threshold
from lbipam.runtime.health import serve_health
from lbipam.runtime.logs import configure_logging
from lbipam.runtime.metrics import Metrics
from lbipam.runtime.startup import Gate, start_up
from lbipam.runtime.wiring import Controllers
from lbipam.settings import Settings

log = logging.getLogger("lbipam")


class Operator:
    """One replica: serves health and metrics always, runs Kopf only while leading."""

    def __init__(self, settings: Settings, api: Api, metrics: Metrics) -> None:
        self.settings = settings
        self.api = api
        self.metrics = metrics
        self.gate: Gate | None = None
        self.kopf_ready = asyncio.Event()
        self.heartbeat = time.monotonic()

    async def lead(self, term: Term) -> None:
        """Run Kopf until the term ends (leadership lost) or Kopf stops on a signal.

        Each term starts from a fresh registry rebuilt from the cluster, never carried over,
        and its writes are fenced by the term, so nothing decided in it is written after it.
        """
        self.kopf_ready = asyncio.Event()
        gate = Gate()
        starting = asyncio.create_task(start_up(gate, self.settings, self.api, term, self.metrics))
        try:
            controllers = await asyncio.shield(gate.listed)
        except BaseException:
            starting.cancel()
            raise
        self.gate = gate
        try:
            if not term.active():
                # The start-up list outlasted the term (a stolen Lease, a long pause): Kopf
                # started with its stop flag set would only retry against a closing client.
                log.warning("the term ended while reading the Services; not starting")
                await term.ended.wait()  # the elector notices and ends it; then it tries again
                return
            log.info("leading: starting to handle Services and IPPools")
            # Kopf's memory of every object it saw, ours so its size can be watched.
            memories = ResourceMemories()
            tables = functools.partial(term_tables, controllers, memories)
            async with self.metrics.leading_with(controllers.registry, tables):
                await kopf.operator(
                    clusterwide=True,
                    standalone=True,
                    memories=memories,
                    memo=kopf.Memo(gate=gate, term=term),
                    ready_flag=self.kopf_ready,
                    stop_flag=term.ended,
                )
        finally:
            term.ended.set()
            starting.cancel()
            gate.close()
            self.gate = None
            await controllers.stop()
            log.info("stopped handling Services and IPPools")

    def ready(self) -> bool:
        if self.gate is None:
            return True  # a healthy standby replica is ready: it takes over when the leader goes
        return self.kopf_ready.is_set() and self.gate.ready

    async def beat(self) -> None:
        """Proves the event loop turns; /healthz fails when it stops doing so."""
        while True:
            self.heartbeat = time.monotonic()
            await asyncio.sleep(1)

    def healthy(self) -> bool:
        return time.monotonic() - self.heartbeat < 10


def term_tables(controllers: Controllers, memories: ResourceMemories) -> dict[str, int]:
    """The term's tables, and Kopf's per-object state: a memory per object seen (dropped on
    its deletion event) and a worker task per object with events in flight (ends when idle)."""
    return controllers.tables() | {
        "kopf_memories": sum(1 for _ in memories.iter_all_memories()),
        "kopf_workers": sum(
            1 for task in asyncio.all_tasks() if task.get_name().startswith("worker for ")
        ),
        "asyncio_tasks": len(asyncio.all_tasks()),
    }


async def main(settings: Settings) -> None:
    api = connect()
    metrics = Metrics()
    metrics.serve(settings.metrics_port)
    operator = Operator(settings, api, metrics)
    health = await serve_health(operator, settings.health_port)
    beat = asyncio.create_task(operator.beat())
    log.info(
        "lbipam %s: class %s%s, metrics :%d, health :%d, leader election %s",
        __version__,
        settings.lb_class,
        " (and Services without a class)" if settings.default_class else "",
        settings.metrics_port,
        settings.health_port,
        "on" if settings.leader_election else "off",
    )
    # While Kopf runs it owns SIGINT/SIGTERM and stops itself; lead() then returns, and so
    # does the elector. A standby replica has no Kopf: these handlers end its wait.
    shutdown = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, shutdown.set)
    if settings.leader_election:
        identity = f"{socket.gethostname()}-{os.getpid()}"
        elector = LeaderElector(Leases(api, settings.namespace), settings, identity=identity)
        work = asyncio.create_task(elector.run(operator.lead))
    else:
        work = asyncio.create_task(operator.lead(Term()))
    stopper = asyncio.create_task(shutdown.wait())
    try:
        await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (work, stopper, beat):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        await health.cleanup()
        await api.close()


def tune_gc() -> None:
    """Fewer, cheaper cyclic collections: every event parses bodies of a few hundred objects,
    most of them garbage within milliseconds and in no cycle, and each full collection walks
    every object alive, more with every Service. The modules and objects of start-up are
    frozen out of the walk."""
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def run(settings: Settings) -> int:
    configure_logging(settings)
    tune_gc()
    fix_mmap_threshold()
    try:
        # Kopf's own CLI runs on uvloop too; half the operator's CPU is the loop and aiohttp.
        uvloop.run(main(settings))
    except KeyboardInterrupt:
        pass
    except Exception:
        log.exception("lbipam stopped on an error")
        return 1
    return 0

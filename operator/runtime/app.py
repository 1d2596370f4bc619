"""Assembles the process: logging, metrics and health servers, leader election, then Kopf."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import time

import kopf
from aiohttp import web
from kubernetes.aio.client import ApiClient

import lbipam.handlers.namespaces
import lbipam.handlers.policies
import lbipam.handlers.pools
import lbipam.handlers.services  # noqa: F401 - importing registers the handlers with Kopf
from lbipam import __version__
from lbipam.controllers.policies import PolicyReconciler
from lbipam.controllers.pools import PoolStatusWriter
from lbipam.controllers.services import Reconciler
from lbipam.ha.leader import LeaderElector
from lbipam.ha.term import Term
from lbipam.handlers.startup import State
from lbipam.ipam.registry import Registry
from lbipam.kube.writer import Kube, connect
from lbipam.objects import service_view
from lbipam.runtime.metrics import Metrics
from lbipam.settings import Settings

log = logging.getLogger("lbipam")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler()
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # Kopf and aiohttp narrate every watch at INFO; ours is what a user needs to read.
    for noisy in ("kopf", "aiohttp.access", "kubernetes.aio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


class Operator:
    """One replica: serves health and metrics always, runs Kopf only while leading."""

    def __init__(self, settings: Settings, api: ApiClient) -> None:
        self.settings = settings
        self.api = api
        self.metrics = Metrics(Registry())
        self.state: State | None = None
        self.kopf_ready = asyncio.Event()
        self.leading = False
        self.heartbeat = time.monotonic()

    def _fresh_state(self, term: Term) -> State:
        """New state per term of leadership: rebuilt from the cluster, never carried over.

        Its writes are fenced by the term, so nothing decided in it is written after it.
        """
        kube = Kube(self.api, self.settings.namespace, term)
        registry = Registry()
        self.metrics.use(registry)
        pools = PoolStatusWriter(registry, kube)
        reconciler = Reconciler(registry, kube, self.metrics, pools)
        policies = PolicyReconciler(kube, self.metrics, self.settings)
        policies.views = reconciler.views
        return State(self.settings, registry, kube, self.metrics, pools, reconciler, policies)

    async def lead(self, term: Term) -> None:
        """Run Kopf until the term ends (leadership lost) or Kopf stops on a signal."""
        self.state = state = self._fresh_state(term)
        self.kopf_ready = asyncio.Event()
        self.leading = True
        self.metrics.set_leader(True)
        log.info("leading: starting to handle Services and IPPools")
        writer = asyncio.create_task(state.pools.run())
        sweeper = asyncio.create_task(state.reconciler.sweep_forever())
        try:
            state.reconciler.snapshot = [
                service_view(body, self.settings, None) for body in await state.kube.list_services()
            ]
            await kopf.operator(
                clusterwide=True,
                standalone=True,
                memo=kopf.Memo(state=state),
                ready_flag=self.kopf_ready,
                stop_flag=term.ended,
            )
        finally:
            term.ended.set()
            writer.cancel()
            sweeper.cancel()
            state.reconciler.cancel()
            await state.kube.close()
            self.leading = False
            self.metrics.set_leader(False)
            self.metrics.pending.set(0)
            log.info("stopped handling Services and IPPools")

    def ready(self) -> bool:
        if not self.leading:
            return True  # a healthy follower is ready: it takes over when the leader goes
        return self.kopf_ready.is_set() and self.state is not None and self.state.reconciler.rebuilt

    async def beat(self) -> None:
        """Proves the event loop turns; /healthz fails when it stops doing so."""
        while True:
            self.heartbeat = time.monotonic()
            await asyncio.sleep(1)

    def healthy(self) -> bool:
        return time.monotonic() - self.heartbeat < 10


async def serve_health(operator: Operator, port: int) -> web.AppRunner:
    async def healthz(_: web.Request) -> web.Response:
        ok = operator.healthy()
        return web.Response(status=200 if ok else 503, text="ok\n" if ok else "stuck\n")

    async def readyz(_: web.Request) -> web.Response:
        ok = operator.ready()
        return web.Response(status=200 if ok else 503, text="ready\n" if ok else "starting\n")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, port=port).start()
    return runner


async def main(settings: Settings) -> None:
    api = await connect()
    operator = Operator(settings, api)
    operator.metrics.serve(settings.metrics_port)
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
    # does the elector. A follower has no Kopf: these handlers end its wait.
    shutdown = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, shutdown.set)
    if settings.leader_election:
        identity = f"{socket.gethostname()}-{os.getpid()}"
        elector = LeaderElector(api, settings, identity=identity)
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
        await api.close()  # type: ignore[no-untyped-call]


def run(settings: Settings) -> int:
    configure_logging(settings)
    try:
        asyncio.run(main(settings))
    except KeyboardInterrupt:
        pass
    except Exception:
        log.exception("lbipam stopped on an error")
        return 1
    return 0

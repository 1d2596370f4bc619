"""Liveness and readiness over HTTP, answered by whatever can say whether this replica is well."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web


class Checked(Protocol):
    def healthy(self) -> bool: ...

    def ready(self) -> bool: ...


async def serve_health(operator: Checked, port: int) -> web.AppRunner:
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

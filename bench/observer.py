"""The benchmark's side of `bench.watcher`: starts it, collects its lines, answers waits."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.api import Credentials

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Sighting:
    seen: float  # wall clock when the watcher read the first event with an address
    created: float  # creationTimestamp (whole seconds)
    ip: str


def _timestamp(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Observer:
    """A `bench.watcher` process on one namespace; `seen` fills as addresses appear."""

    def __init__(self, credentials: Credentials, namespace: str) -> None:
        self.credentials = credentials
        self.namespace = namespace
        self.seen: dict[str, Sighting] = {}
        self._waiters: dict[str, asyncio.Future[Sighting]] = {}
        self._changed = asyncio.Event()
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self, wait_s: float = 30) -> None:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.watcher",
            *self.credentials.args(),
            self.namespace,
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
            limit=2**20,
        )
        assert self._process.stdout is not None
        line = await asyncio.wait_for(self._process.stdout.readline(), wait_s)
        if line.strip() != b"READY":
            raise RuntimeError(f"watcher did not start: {line!r}")
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        async for raw in self._process.stdout:
            entry = json.loads(raw)
            sighting = Sighting(entry["seen"], _timestamp(entry["created"]), entry["ip"])
            self.seen[entry["name"]] = sighting
            waiter = self._waiters.pop(entry["name"], None)
            if waiter is not None and not waiter.done():
                waiter.set_result(sighting)
            self._changed.set()

    async def address_of(self, name: str, wait_s: float) -> Sighting:
        """Wait until the named Service is seen with an address."""
        if name in self.seen:
            return self.seen[name]
        waiter = self._waiters.setdefault(name, asyncio.get_running_loop().create_future())
        return await asyncio.wait_for(asyncio.shield(waiter), wait_s)

    async def until_count(self, names: set[str], wait_s: float) -> int:
        """Wait until every one of `names` was seen addressed, or `wait_s`; returns how many."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while not names <= self.seen.keys():
            left = deadline - loop.time()
            if left <= 0:
                break
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 1.0))
        return len(names & self.seen.keys())

    async def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._process.wait(), 10)
            if self._process.returncode is None:
                self._process.kill()
                await self._process.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

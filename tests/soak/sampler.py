"""Every 10 s: both replicas' RSS and open sockets, the leader's table sizes and the population
they serve."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.procstat import usage
from tests.operator_process import OperatorProcess

INTERVAL = 10.0
TABLE = re.compile(r'^lbipam_debug_table_entries\{table="([^"]+)"\} (\S+)$', re.M)


@dataclass
class Sample:
    at: float  # seconds since the soak's clock started
    rss_mib: list[float | None]  # per replica; None while it is not running
    # Per replica: each connection to the API server keeps TLS buffers of a few hundred KiB.
    sockets: list[int | None]
    pids: list[int | None]
    leader: int | None  # index of the replica leading, if one answered so
    tables: dict[str, int]  # the leader's, empty when it did not answer
    population: int  # Services the soak keeps at that moment


def tables_of(metrics: str) -> dict[str, int]:
    return {name: int(float(value)) for name, value in TABLE.findall(metrics)}


def _pid(replica: OperatorProcess) -> int | None:
    popen = replica.popen
    return popen.pid if popen is not None and popen.poll() is None else None


def _sockets(pid: int | None) -> int | None:
    if pid is None:
        return None
    try:
        fds = Path(f"/proc/{pid}/fd").iterdir()
        return sum(1 for fd in fds if os.readlink(fd).startswith("socket:"))
    except OSError:  # exited, or a descriptor closed while it was read: none this time
        return None


def _rss(pid: int | None) -> float | None:
    try:
        return usage(pid).rss_mib if pid is not None else None
    except OSError:  # exited meanwhile
        return None


class Sampler(threading.Thread):
    """Samples every `INTERVAL` seconds on its own clock until stopped."""

    def __init__(self, replicas: tuple[OperatorProcess, ...], population: Callable[[], int]):
        super().__init__(name="soak-sampler", daemon=True)
        self.replicas = replicas
        self.population = population
        self.samples: list[Sample] = []
        self.started = time.monotonic()
        self.wall_started = time.time()  # for the report: when `at` is 0
        self._halt = threading.Event()

    def sample(self) -> Sample:
        pids = [_pid(replica) for replica in self.replicas]
        rss = [_rss(pid) for pid in pids]
        sockets = [_sockets(pid) for pid in pids]
        leader, tables = None, {}
        for index, replica in enumerate(self.replicas):
            try:
                text = replica.metrics() if pids[index] is not None else ""
            except OSError:  # too busy to answer within the scrape's timeout: no tables now
                continue
            if re.search(r"^lbipam_leader 1\.0$", text, re.M):
                leader, tables = index, tables_of(text)
        at = time.monotonic() - self.started
        return Sample(at, rss, sockets, pids, leader, tables, self.population())

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append(self.sample())
            self._halt.wait(INTERVAL - (time.monotonic() - self.started) % INTERVAL)

    def stop(self) -> None:
        self._halt.set()
        self.join(30)

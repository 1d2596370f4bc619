"""Runs `lbipam run` as a real process against the test control plane."""

from __future__ import annotations

import abc
import ctypes.util
import functools
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from tests.controlplane import ControlPlane
from tests.controlplane.cluster import die_with_parent, free_port

# The allocator the image runs the operator on (Dockerfile): mimalloc, under Python's objects
# too. Tests and benchmarks run it the same way, or their memory numbers would be another's.
ALLOCATOR = {
    "LD_PRELOAD": "libmimalloc.so.2",
    "PYTHONMALLOC": "malloc",
    "MIMALLOC_DECOMMIT_DELAY": "0",
    "MIMALLOC_SEGMENT_DECOMMIT_DELAY": "0",
}


@functools.cache
def _allocator_found() -> bool:
    # find_library runs ldconfig: once per test run, not at every operator's start.
    return ctypes.util.find_library("mimalloc") is not None


def allocator_env() -> dict[str, str]:
    """ALLOCATOR, once its library is known to load (the loader would only warn and go on)."""
    if not _allocator_found():
        raise RuntimeError(
            "libmimalloc.so.2 is not installed, and the image runs the operator on it: "
            "apt-get install libmimalloc2.0 (.ci/run does)"
        )
    return dict(ALLOCATOR)


class Replica(abc.ABC):
    """What every way of running the operator shares: its health and metrics ports, its log."""

    metrics_port: int
    health_port: int

    @abc.abstractmethod
    def exit_code(self) -> int | None:
        """None while it runs."""

    @abc.abstractmethod
    def logs(self, lines: int = 60) -> str: ...

    def http(self, port: int, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as error:
            return int(error.code), error.read().decode()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.exit_code()
            if code is not None:
                raise RuntimeError(f"lbipam exited with {code}:\n{self.logs()}")
            try:
                if self.http(self.health_port, "/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"lbipam not ready after {timeout}s:\n{self.logs()}")

    def metrics(self) -> str:
        return self.http(self.metrics_port, "/metrics")[1]

    def leading(self) -> bool:
        return re.search(r"^lbipam_leader 1\.0$", self.metrics(), re.M) is not None


R = TypeVar("R", bound=Replica)


def leader_of(replicas: Sequence[R]) -> R | None:
    """The one replica that says it leads, if any; two saying so fails the test."""
    leading = [r for r in replicas if r.leading()]
    assert len(leading) <= 1, "two replicas claim to lead"
    return leading[0] if leading else None


class OperatorProcess(Replica):
    """One operator replica, as a user runs it: `lbipam run` with settings in its environment."""

    def __init__(self, plane: ControlPlane, **settings: str) -> None:
        self.plane = plane
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.env = plane.env()
        self.env.update(
            LBIPAM_METRICS_PORT=str(self.metrics_port),
            LBIPAM_HEALTH_PORT=str(self.health_port),
            LBIPAM_LEADER_ELECTION="false",
            LBIPAM_NAMESPACE="default",
            LBIPAM_LOG_LEVEL="debug",
            **allocator_env(),
        )
        self.env.update(settings)
        self.log_path = Path(tempfile.mkstemp(prefix="lbipam-operator-", suffix=".log")[1])
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> OperatorProcess:
        if self.popen is not None and self.popen.poll() is None:
            raise RuntimeError("this operator is already running: a second one would compete")
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                self.command(),
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        if wait:
            self.wait_ready()
        return self

    def command(self) -> list[str]:
        return [str(Path(sys.executable).parent / "lbipam"), "run"]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def exit_code(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def logs(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:  # another run's clean-up may sweep /tmp
            return f"(log {self.log_path} is gone)"
        return "\n".join(text.splitlines()[-lines:])

    def cleanup(self) -> None:
        self.stop()
        if os.environ.get("LBIPAM_KEEP_LOGS") is None:
            self.log_path.unlink(missing_ok=True)

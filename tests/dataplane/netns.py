"""Network namespaces this test session owns: create, run commands in, open sockets in, remove.

Every namespace is named `lbt<pid>-<role>`, with the pid of the pytest process that made it, so a
sweep can remove what a killed session left behind without touching a live session's namespaces.
Links are created inside the namespaces (never in the host's), so deleting the namespaces removes
every veth, address, route and iptables rule with them.
"""

from __future__ import annotations

import ctypes
import os
import re
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
NETNS_DIR = Path("/run/netns")
_PREFIX = "lbt"
_CLONE_NEWNET = 0x40000000
_OWNED = re.compile(rf"^{_PREFIX}(\d+)-")
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def ip(*args: str) -> None:
    """Run `ip` and fail with its message."""
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep() -> list[str]:
    """Delete namespaces left by test sessions that are no longer running; returns their names."""
    removed = []
    for path in sorted(NETNS_DIR.glob(f"{_PREFIX}*")) if NETNS_DIR.is_dir() else []:
        owner = _OWNED.match(path.name)
        if owner and not _alive(int(owner.group(1))):
            subprocess.run(["ip", "netns", "del", path.name], capture_output=True)
            removed.append(path.name)
    return removed


class Netns:
    """One network namespace of this session, with loopback up."""

    def __init__(self, role: str) -> None:
        self.name = f"{_PREFIX}{os.getpid()}-{role}"
        ip("netns", "add", self.name)
        self.ip("link", "set", "lo", "up")

    def ip(self, *args: str) -> None:
        ip("-n", self.name, *args)

    def run(self, *argv: str) -> str:
        """Run a command inside the namespace; returns its output."""
        result = subprocess.run(
            ["ip", "netns", "exec", self.name, *argv], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} in {self.name}: {result.stderr.strip()}")
        return result.stdout

    def sysctl(self, **values: str) -> None:
        """Set sysctls of this namespace only (dots as `__`, e.g. net__ipv4__ip_forward)."""
        self.run("sysctl", "-q", "-w", *(f"{k.replace('__', '.')}={v}" for k, v in values.items()))

    def inside(self, make: Callable[[], T]) -> T:
        """Call `make` in a thread that has entered this namespace: sockets it opens live here."""
        results: list[T] = []
        errors: list[BaseException] = []

        def enter_and_make() -> None:
            try:
                fd = os.open(NETNS_DIR / self.name, os.O_RDONLY)
                try:
                    if _libc.setns(fd, _CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), f"setns into {self.name}")
                finally:
                    os.close(fd)
                results.append(make())
            except BaseException as error:
                errors.append(error)

        # The thread ends right after, so no other code ever runs in the wrong namespace.
        thread = threading.Thread(target=enter_and_make, name=f"netns-{self.name}")
        thread.start()
        thread.join()
        if errors:
            raise errors[0]
        return results[0]

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


def veth(a: Netns, a_name: str, b: Netns, b_name: str) -> None:
    """A veth pair between two namespaces, both ends up."""
    a.ip("link", "add", a_name, "type", "veth", "peer", "name", b_name, "netns", b.name)
    a.ip("link", "set", a_name, "up")
    b.ip("link", "set", b_name, "up")

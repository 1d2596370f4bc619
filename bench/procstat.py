"""CPU time and memory of a process, read from /proc."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    cpu_s: float  # user + system seconds since the process started
    rss_mib: float  # VmRSS now
    hwm_mib: float  # VmHWM: the peak resident set size


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        # The command name may hold spaces; the fields after its closing parenthesis do not.
        fields = stat.read().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / _TICK


def started_at(pid: int) -> float:
    """Wall-clock time the process started."""
    with open(f"/proc/{pid}/stat") as stat:
        ticks = int(stat.read().rsplit(")", 1)[1].split()[19])  # field 22 of proc(5)
    with open("/proc/uptime") as uptime:
        up = float(uptime.read().split()[0])
    return time.time() - up + ticks / _TICK


def _status_kib(pid: int, name: str) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(name + ":"):
                return float(line.split()[1])
    return 0.0


def usage(pid: int) -> Usage:
    return Usage(
        cpu_s=cpu_seconds(pid),
        rss_mib=_status_kib(pid, "VmRSS") / 1024,
        hwm_mib=_status_kib(pid, "VmHWM") / 1024,
    )

"""Sampling the operator with py-spy, or reading a cProfile dump when py-spy is unavailable."""

from __future__ import annotations

import os
import pstats
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any


def py_spy() -> str | None:
    """py-spy from $PY_SPY, PATH or beside this Python; None when it is not installed."""
    for candidate in (
        os.environ.get("PY_SPY"),
        shutil.which("py-spy"),
        str(Path(sys.executable).parent / "py-spy"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


_STDLIB = re.compile(r"^.*/lib/python3\.\d+/")


def _frame(text: str) -> str:
    """'f (/x/site-packages/kopf/y.py:1)' is 'f (kopf/y.py:1)'; our operator/ shows as lbipam/."""
    name, _, where = text.partition(" (")
    where = where.rstrip(")")
    if "/site-packages/" in where:
        where = where.rsplit("/site-packages/", 1)[1]
    elif "/operator/" in where or where.startswith("operator/"):
        where = "lbipam/" + where.rsplit("operator/", 1)[1]
    else:
        where = _STDLIB.sub("", where)
    return f"{name} ({where})"


class SpyRecorder:
    """`py-spy record` on a running pid until stopped; non-blocking, so the target never pauses."""

    def __init__(self, binary: str, pid: int, out: Path, rate: int = 100) -> None:
        self.out = out
        self.argv = [
            binary,
            "record",
            "--nonblocking",
            "--function",
            f"--rate={rate}",
            "--format=raw",
            f"--output={out}",
            f"--pid={pid}",
        ]
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.popen = subprocess.Popen(
            self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
        )

    def stop(self) -> dict[str, Any]:
        if self.popen is None:
            return {}
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
        try:
            _, err = self.popen.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            _, err = self.popen.communicate()
        if not self.out.exists():
            return {"error": err.decode(errors="replace")[-500:]}
        return summarize_collapsed(self.out.read_text())


def summarize_collapsed(text: str, top: int = 20) -> dict[str, Any]:
    """Top functions by own samples (leaf) and by inclusive samples, from collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count

    def share(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"frame": frame, "samples": n, "percent": round(100 * n / max(total, 1), 1)}
            for frame, n in counter.most_common(top)
        ]

    return {"tool": "py-spy", "samples": total, "by_own": share(own), "by_total": share(inclusive)}


def summarize_cprofile(path: Path, top: int = 20) -> dict[str, Any]:
    """Top functions of a cProfile dump by cumulative and by own (tottime) seconds."""
    loaded: Any = pstats.Stats(str(path))
    stats: dict[Any, Any] = loaded.stats  # {(file, line, name): (cc, nc, tt, ct, callers)}

    def name(func: tuple[str, int, str]) -> str:
        return _frame(f"{func[2]} ({func[0]}:{func[1]})")

    def ranked(index: int) -> list[dict[str, Any]]:
        rows = sorted(stats.items(), key=lambda item: item[1][index], reverse=True)[:top]
        return [
            {"frame": name(f), "calls": s[1], "tottime": round(s[2], 3), "cumtime": round(s[3], 3)}
            for f, s in rows
        ]

    return {"tool": "cProfile", "by_own": ranked(2), "by_total": ranked(3)}

"""Where lbipam's memory goes: imports step by step, and the live heap after a burst.

- `python -m bench.heap imports`: RSS after each layer of imports, in a fresh process.
- `python bench/heap.py run OUT.json`: `lbipam run`; SIGUSR2 starts tracemalloc, SIGUSR1
  writes what is live of what was allocated since to OUT.json, each allocation charged to
  the innermost frame outside the standard library (a dict built by `json.loads` in Kopf's
  watcher counts as Kopf's), summed by package and by line. `bench.cluster --heap-n N`
  starts tracing once the operator is ready, so the dump shows what a burst leaves behind.
  (Traced from the start, the generated client's start-up alone takes over 10 minutes.)
"""

from __future__ import annotations

import json
import os
import signal
import sys
import sysconfig
import tracemalloc
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

_STDLIB = sysconfig.get_paths()["stdlib"]
# The layers in the order the operator's import pulls them in.
LAYERS = (
    ("asyncio, ssl, json, logging", ("asyncio", "ssl", "json", "logging")),
    ("aiohttp", ("aiohttp",)),
    ("kopf (and what it imports)", ("kopf",)),
    ("prometheus_client, yaml", ("prometheus_client", "yaml")),
    ("lbipam", ("lbipam.runtime.app",)),
)


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def imports() -> list[dict[str, Any]]:
    """RSS after each layer; what each layer added, with the top-level packages it loaded."""
    import importlib

    steps = [{"layer": "interpreter", "rss_mib": round(rss_mib(), 1), "modules": len(sys.modules)}]
    for label, modules in LAYERS:
        before = set(sys.modules)
        previous = rss_mib()
        for module in modules:
            importlib.import_module(module)
        added = Counter(name.split(".")[0] for name in set(sys.modules) - before)
        steps.append(
            {
                "layer": label,
                "rss_mib": round(rss_mib(), 1),
                "added_mib": round(rss_mib() - previous, 1),
                "modules": len(sys.modules) - len(before),
                "packages": dict(added.most_common(8)),
            }
        )
    return steps


def _package(filename: str) -> str:
    if "/site-packages/" in filename:
        return filename.rsplit("/site-packages/", 1)[1].split("/", 1)[0]
    if "/operator/" in filename:
        return "lbipam"
    return "stdlib" if filename.startswith(_STDLIB) else filename


def _owner(trace: tracemalloc.Traceback) -> tracemalloc.Frame:
    """The innermost frame outside the standard library (the caller that wanted the memory)."""
    for frame in reversed(trace):  # most recent call last
        if not frame.filename.startswith(_STDLIB) and not frame.filename.startswith("<"):
            return frame
    return trace[-1]


def heap(top: int = 40) -> dict[str, Any]:
    snapshot = tracemalloc.take_snapshot()
    by_package: Counter[str] = Counter()
    by_line: Counter[str] = Counter()
    for stat in snapshot.statistics("traceback"):
        frame = _owner(stat.traceback)
        package = _package(frame.filename)
        by_package[package] += stat.size
        short = frame.filename.rsplit("/site-packages/", 1)[-1].rsplit("/operator/", 1)[-1]
        by_line[f"{package}: {short}:{frame.lineno}"] += stat.size
    current, peak = tracemalloc.get_traced_memory()
    mib = 2**20
    return {
        "rss_mib": round(rss_mib(), 1),
        "traced_mib": round(current / mib, 1),
        "traced_peak_mib": round(peak / mib, 1),
        "by_package_mib": {k: round(v / mib, 2) for k, v in by_package.most_common(top)},
        "by_line_mib": {k: round(v / mib, 2) for k, v in by_line.most_common(top)},
    }


def run(out: Path) -> int:
    def start(signum: int, frame: FrameType | None) -> None:
        tracemalloc.start(int(os.environ.get("BENCH_HEAP_DEPTH", "12")))

    def dump(signum: int, frame: FrameType | None) -> None:
        partial = out.with_suffix(".partial")
        partial.write_text(json.dumps(heap(), indent=2) + "\n")
        partial.rename(out)

    signal.signal(signal.SIGUSR1, dump)
    signal.signal(signal.SIGUSR2, start)
    from lbipam.cli import main

    return main(["run"])


def cli() -> int:
    if sys.argv[1:2] == ["imports"]:
        print(json.dumps(imports(), indent=2))
        return 0
    if sys.argv[1:2] == ["run"] and len(sys.argv) == 3:
        return run(Path(sys.argv[2]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(cli())

"""The soak's numbers: a JSON file and a PNG of both replicas' RSS under build/, one line."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from tests.kit import REPO
from tests.soak.sampler import Sample
from tests.soak.verdict import Scale, TableGrowth

BUILD = REPO / "build"
SUMMARIES: list[str] = []  # printed at the end of the session (conftest)


def machine_load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def write(name: str, report: dict[str, Any], samples: list[Sample], scale: Scale) -> Path:
    """build/<name>.json, and build/<name>.png when matplotlib is there (`make soak` installs
    it; `make test` does without)."""
    BUILD.mkdir(exist_ok=True)
    path = BUILD / f"{name}.json"
    report["samples"] = [dataclasses.asdict(s) for s in samples]
    path.write_text(json.dumps(report, indent=1, default=str))
    report["plot"] = _plot(BUILD / f"{name}.png", samples, scale)
    return path


def _plot(path: Path, samples: list[Sample], scale: Scale) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    figure, axes = plt.subplots(figsize=(9, 4.5))
    led = {s.leader for s in samples}
    for replica in (0, 1):
        points = [
            (s.at / 60, s.rss_mib[replica]) for s in samples if s.rss_mib[replica] is not None
        ]
        axes.plot(
            [t for t, _ in points],
            [v for _, v in points],
            label=f"replica {replica}" + (" (leader)" if replica in led else ""),
        )
    leading = [s.at / 60 for s in samples if s.leader is not None]
    axes.axvline(scale.warmup_minutes, color="grey", linestyle="--", label="end of warm-up")
    axes.set_xlabel("minutes")
    axes.set_ylabel("RSS (MiB)")
    axes.set_title(
        f"lbipam soak: {scale.standing} standing Services, {scale.rate:g} edits/s"
        + (f", leader known in {len(leading)}/{len(samples)} samples" if samples else "")
    )
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return str(path)


def summary(report: dict[str, Any]) -> str:
    slopes = ", ".join(f"{v:+.2f}" for v in report["rss_slope_mib_per_hour"])
    return (
        f"soak {report['minutes']:g} min: {report['standing']} standing Services, churn "
        f"{report['churn_per_second']:.2f} edits/s ({report['churn_edits']} edits), RSS slope "
        f"after {report['warmup_minutes']:g} min {slopes} MiB/h (bound {report['slope_bound']:g}), "
        f"{len(report['growing_tables'])} growing tables, {len(report['violations'])} violations, "
        f"sockets per replica {report['sockets']['after_warmup']} → {report['sockets']['end']}, "
        f"load {report['load_average']}"
    )


def tables(growth: list[TableGrowth]) -> dict[str, dict[str, Any]]:
    return {
        g.table: {k: v for k, v in dataclasses.asdict(g).items() if k != "table"} for g in growth
    }

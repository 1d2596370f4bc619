"""The benchmark report as a short markdown document."""

from __future__ import annotations

from typing import Any


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


LABELS = {
    "floor": "floor",
    "floor_claims": "floor + claims",
    "floor_writes": "floor + claims + Event",
    "lbipam": "lbipam",
    "lbipam_claims_off": "lbipam, claims off",
}
COLUMNS = [
    "N",
    "run",
    "addressed",
    "wall s",
    "Services/s",
    "÷ floor",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "max ms",
    "controller CPU s",
    "CPU ms per Service",
    "peak RSS MiB",
    "load avg at start",
]


def _burst_row(n: str, run: str, result: dict[str, Any], ratio: str) -> str:
    latency = result["latency"]
    controller = result.get("controller") or {}
    return _row(
        [
            n,
            run,
            result["addressed"],
            result["wall_s"],
            result["services_per_s"],
            ratio,
            latency["p50_ms"],
            latency["p90_ms"],
            latency["p99_ms"],
            latency["max_ms"],
            controller.get("cpu_s", "—"),
            controller.get("cpu_ms_per_service", "—"),
            controller.get("peak_rss_mib", "—"),
            result.get("loadavg_at_start", ["?"])[0],
        ]
    )


def comparison(report: dict[str, Any]) -> list[str]:
    """floor | lbipam | peers for every N, then every controller's idle memory."""
    labels = {**LABELS, **report.get("peers", {})}
    if report.get("baseline"):
        labels["lbipam_baseline"] = f"lbipam at {report['baseline']}"
        if report.get("baseline_python"):
            labels["lbipam_baseline"] += f" on {report['baseline_python']}"
        if report.get("baseline_on_glibc"):
            labels["lbipam_baseline"] += ", on glibc and pymalloc"
    out = [_row(COLUMNS), _row(["---"] * len(COLUMNS))]
    for n, sized in report["sizes"].items():
        for key, label in labels.items():
            if key in sized:
                ratio = sized["ratio"].get(key) if key != "floor" else None
                out.append(
                    _burst_row(n, label, sized[key], "" if ratio is None else f"{ratio:.2f}")
                )
    idle = report.get("idle_rss")
    if idle:
        out += ["", _row(["idle, 0 Services", "RSS MiB", "after s", "load avg at start"])]
        out.append(_row(["---"] * 4))
        for key, result in idle.items():
            load = result["loadavg_at_start"][0]
            out.append(_row([labels.get(key, key), result["rss_mib"], result["after_s"], load]))
    return out


def _per_service(result: dict[str, Any]) -> list[str]:
    lines = []
    for call, per in result.get("api_requests_per_service", {}).items():
        lines.append(f"  - `{call}`: {per} per Service")
    return lines


def machine_line(m: dict[str, Any]) -> str:
    """The machine a benchmark ran on, as `bench.cluster.machine` describes it."""
    return (
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gib']} GiB, "
        f"Python {m['python']}, Linux {m['kernel']}; load average at start "
        f"{', '.join(f'{x:.2f}' for x in m['loadavg_at_start'])}; commit {m.get('commit', '?')}."
    )


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    out = [
        machine_line(m),
        f"Requests in flight: at most {report['concurrency']} (the operator's connection pool). "
        f"Latency: from the {report['latency_from']} to the first watch event with an address.",
        "",
        *comparison(report),
        "",
    ]
    for n, sized in report["sizes"].items():
        lbipam = sized["lbipam"]
        ts = lbipam["latency_from_creation_timestamp_ms"]
        out.append(
            f"- N={n}: lbipam latency from creationTimestamp (1 s resolution): "
            f"p50 {ts['p50_ms']} ms, p99 {ts['p99_ms']} ms; addressed {lbipam['addressed']}, "
            f"distinct addresses {lbipam['distinct_addresses']}; "
            f"CPU s during the burst: {lbipam['cpu_s']}"
        )
        for label in ("restart", "restart_after_pool_edit"):
            if label in lbipam:
                r = lbipam[label]
                out.append(
                    f"- {label.replace('_', ' ')} with {r['services_holding']} Services holding "
                    f"addresses: /readyz after {r['readyz_s']} s, a new Service addressed after "
                    f"{r['probe_addressed_s']} s (ready {r['ready_s']} s); addresses changed: "
                    f"{r['addresses_changed']}; old operator stopped in {r['stop_s']} s"
                )
        if "pool_edit" in lbipam:
            p = lbipam["pool_edit"]
            out.append(
                f"- pool edit (grow to {', '.join(p['addresses'])}): a new Service addressed "
                f"after {p['probe_addressed_s']} s, pool status updated after "
                f"{p['status_observed_s']} s; addresses changed: {p['addresses_changed']}"
            )
        if "idle" in lbipam:
            i = lbipam["idle"]
            out.append(
                f"- idle, one Service at a time ({i['count']}): p50 {i['p50_ms']} ms, "
                f"p99 {i['p99_ms']} ms, max {i['max_ms']} ms"
            )
        if lbipam.get("api_requests_per_service"):
            out.append(f"- N={n}: API requests per Service during the lbipam burst:")
            out.extend(_per_service(lbipam))
    profiled = report.get("profiled_burst")
    if profiled:
        profile = profiled.get("profile") or {}
        out.append("")
        out.append(
            f"Profiled burst (N={profiled['n']}, {profile.get('tool', '?')}, "
            f"{profiled['services_per_s']} Services/s while sampled):"
        )
        for title, key in (("own time", "by_own"), ("inclusive time", "by_total")):
            out.append("")
            out.append(f"Top frames by {title}:")
            out.append("")
            for entry in profile.get(key, [])[:15]:
                share = (
                    f"{entry['percent']}%"
                    if "percent" in entry
                    else f"tottime {entry['tottime']} s, cumtime {entry['cumtime']} s"
                )
                out.append(f"- {share} `{entry['frame']}`")
    return "\n".join(out) + "\n"

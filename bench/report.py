"""The benchmark report as a short markdown document."""

from __future__ import annotations

from typing import Any


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _burst_rows(n: str, run: str, result: dict[str, Any], ratio: str) -> str:
    latency = result["latency"]
    operator = result.get("operator") or {}
    return _row(
        [
            n,
            run,
            result["wall_s"],
            result["services_per_s"],
            latency["p50_ms"],
            latency["p90_ms"],
            latency["p99_ms"],
            latency["max_ms"],
            operator.get("cpu_s", "—"),
            operator.get("peak_rss_mib", "—"),
            ratio,
        ]
    )


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
        _row(
            [
                "N",
                "run",
                "wall s",
                "Services/s",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "max ms",
                "operator CPU s",
                "operator peak RSS MiB",
                "lbipam ÷ floor",
            ]
        ),
        _row(["---"] * 11),
    ]
    for n, sized in report["sizes"].items():
        out.append(_burst_rows(n, "floor", sized["floor"], ""))
        out.append(_burst_rows(n, "lbipam", sized["lbipam"], f"{sized['ratio']:.2f}"))
    out.append("")
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

"""`kubectl lbipam pools`: each pool's use, its conditions, and who holds its addresses."""

from __future__ import annotations

from typing import Any

from lbipam.api import POOL_EXHAUSTED, POOL_READY, POOL_SERVICE_CIDR
from lbipam.kubectl.render import Style, bar, table
from lbipam.kubectl.report import Report, condition_text
from lbipam.kubectl.view import View

COUNTS = ("total", "allocated", "available")
# Shown when a pool's status carries them (a newer operator may report them).
OPTIONAL_COUNTS = ("held", "reserved")
NOTABLE = {POOL_READY: "False", POOL_EXHAUSTED: "True", POOL_SERVICE_CIDR: "True"}


def pool_data(view: View) -> list[dict[str, Any]]:
    holders, holds = view.holders(), view.holds()
    pools = []
    for body in view.snapshot.pools:
        name = body["metadata"]["name"]
        spec, status = body.get("spec") or {}, body.get("status") or {}
        summary = view.summary(name)
        counts = {k: int(status[k]) if k in status else getattr(summary, k) for k in COUNTS}
        counts.update({k: int(status[k]) for k in OPTIONAL_COUNTS if k in status})
        pools.append(
            {
                "name": name,
                **counts,
                "priority": int(spec.get("priority") or 0),
                "autoAssign": bool(spec.get("autoAssign", True)),
                "addresses": list(spec.get("addresses") or ()),
                "conditions": [
                    {k: c.get(k, "") for k in ("type", "status", "reason", "message")}
                    for c in status.get("conditions") or ()
                ],
                "services": [
                    {"service": str(key), "addresses": list(addresses)}
                    for key, addresses in holders.get(name, [])
                ],
                "heldAfterRelease": [
                    {"address": address, "hold": described}
                    for address, described in holds.get(name, [])
                ],
            }
        )
    return pools


def state(pool: dict[str, Any], style: Style) -> str:
    """`Ready`, or what keeps the pool from handing out addresses; `Unknown` before any status."""
    conditions = {c["type"]: c for c in pool["conditions"]}
    if not conditions:
        return style("Unknown", "warn")
    ready = conditions.get(POOL_READY, {})
    words = ["Ready" if ready.get("status") == "True" else ready.get("reason") or "NotReady"]
    words += [
        kind
        for kind in (POOL_EXHAUSTED, POOL_SERVICE_CIDR)
        if conditions.get(kind, {}).get("status") == "True"
    ]
    return style(",".join(words), "good" if words == ["Ready"] else "bad")


def pools_report(view: View, style: Style, show_services: bool) -> Report:
    pools = pool_data(view)
    if not pools:
        return Report(pools, ["No IPPools. Create one: kubectl apply -f pool.yaml"])
    extra = [k for k in OPTIONAL_COUNTS if any(k in p for p in pools)]
    headers = [
        "NAME",
        "USED",
        *(k.upper() for k in (*COUNTS, *extra)),
        "PRIORITY",
        "AUTO",
        "STATUS",
    ]
    rows = [
        [
            p["name"],
            bar(p["allocated"], p["total"], style),
            *(str(p.get(k, "-")) for k in (*COUNTS, *extra)),
            str(p["priority"]),
            "yes" if p["autoAssign"] else "no",
            state(p, style),
        ]
        for p in pools
    ]
    lines = table(headers, rows)
    for p in pools:
        notable = [c for c in p["conditions"] if NOTABLE.get(c["type"]) == c["status"]]
        if notable or show_services:
            lines += ["", f"{style(p['name'], 'bold')}: {', '.join(p['addresses'])}"]
        lines += [f"  {condition_text(c, style)}" for c in notable]
        if show_services:
            holders = [[h["service"], ", ".join(h["addresses"])] for h in p["services"]]
            lines += (
                table(["SERVICE", "ADDRESSES"], holders, "  ")
                if holders
                else ["  no Service holds an address of it"]
            )
            lines += [f"  {h['hold']}" for h in p["heldAfterRelease"]]
    return Report(pools, lines)

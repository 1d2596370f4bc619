"""`kubectl lbipam services`: who holds what, by namespace; `--pending`: who waits, and why."""

from __future__ import annotations

from typing import Any

from lbipam.kubectl.render import Style, age, table
from lbipam.kubectl.report import Report
from lbipam.kubectl.view import View
from lbipam.objects import held_addresses, our_condition


def service_data(view: View, namespace: str | None) -> list[dict[str, Any]]:
    rows = []
    for service in view.handled():
        meta = service["metadata"]
        if namespace is not None and meta["namespace"] != namespace:
            continue
        addresses = held_addresses(service)
        condition = our_condition(service) or {}
        pools = {view.registry.pool_of(a) for a in addresses}
        rows.append(
            {
                "namespace": meta["namespace"],
                "name": meta["name"],
                "addresses": list(addresses),
                "pools": sorted(p for p in pools if p is not None),
                "reason": condition.get("reason") or "",
                "message": condition.get("message") or "",
                "since": condition.get("lastTransitionTime") or meta.get("creationTimestamp") or "",
            }
        )
    return rows


def services_report(view: View, style: Style, namespace: str | None, pending: bool) -> Report:
    rows = service_data(view, namespace)
    where = f" in namespace {namespace}" if namespace else ""
    if pending:
        rows = [r for r in rows if not r["addresses"]]
        if not rows:
            return Report(
                rows, [f"No LoadBalancer Service of lbipam's waits for an address{where}."]
            )
        cells = [
            [
                r["namespace"],
                r["name"],
                style(r["reason"] or "NotSeenYet", "bad"),
                age(r["since"]),
                r["message"] or "lbipam has not written a condition yet: is it running?",
            ]
            for r in rows
        ]
        return Report(rows, table(["NAMESPACE", "NAME", "REASON", "SINCE", "MESSAGE"], cells))
    if not rows:
        return Report(rows, [f"No LoadBalancer Service of lbipam's{where}."])
    cells = [
        [
            r["namespace"],
            r["name"],
            ", ".join(r["addresses"]) or style("<pending>", "warn"),
            ", ".join(r["pools"]) or "-",
            style(r["reason"] or "NotSeenYet", "good" if r["reason"] == "Allocated" else "bad"),
        ]
        for r in rows
    ]
    return Report(rows, table(["NAMESPACE", "NAME", "ADDRESSES", "POOL", "STATUS"], cells))

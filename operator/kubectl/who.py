"""`kubectl lbipam who ADDRESS`: who holds an address, its claim, its pool, and its history."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Mapping
from typing import Any

from lbipam.ipam.addresses import parse_address, parse_entry
from lbipam.kubectl.cluster import Cluster
from lbipam.kubectl.render import Style, age
from lbipam.kubectl.report import Report, event_lines
from lbipam.kubectl.view import View
from lbipam.objects import claim_view, held_addresses, service_key

LAST_EVENTS = 10


def service_cidrs_containing(view: View, address: str) -> list[str]:
    ip = parse_address(address)
    return sorted(
        name
        for name, cidrs in view.snapshot.service_cidrs.items()
        if any(
            family == ip.family and first <= ip.value <= last
            for family, (first, last) in map(parse_entry, cidrs)
        )
    )


def involved(event: Mapping[str, Any]) -> str:
    """`namespace/name` of what an Event is about; `name` alone for a cluster-scoped object."""
    obj = event.get("involvedObject") or {}
    return f"{obj['namespace']}/{obj.get('name')}" if obj.get("namespace") else str(obj.get("name"))


async def who_data(cluster: Cluster, view: View, address: str) -> dict[str, Any]:
    claim, events = await asyncio.gather(cluster.claim(address), cluster.events_about(address))
    view.restore_holds([claim] if claim else [])
    wanted = ipaddress.ip_address(address)
    holders = [
        str(service_key(s))
        for s in view.snapshot.services
        if any(ipaddress.ip_address(a) == wanted for a in held_addresses(s))
    ]
    claimed = claim_view(claim) if claim else None
    return {
        "address": address,
        "holders": holders,
        "claim": None
        if claimed is None
        else {
            "manager": claimed.manager,
            "for": str(claimed.parent) if claimed.parent else None,
            "describe": claimed.describe(),
            "created": claimed.created,
        },
        "heldAfterRelease": view.registry.describe_hold(address),
        "pool": view.registry.pool_of(address),
        "serviceCIDRs": service_cidrs_containing(view, address),
        "events": [
            {k: e.get(k) for k in ("type", "reason", "message", "lastTimestamp")}
            | {"object": involved(e)}
            for e in events[-LAST_EVENTS:]
        ],
    }


def who_lines(data: Mapping[str, Any], style: Style) -> list[str]:
    address, claim = data["address"], data["claim"]
    holders = ", ".join(f"Service {h}" for h in data["holders"])
    lines = [style(address, "bold")]
    if holders:
        lines.append(f"  held by: {holders}")
    elif data["heldAfterRelease"]:
        lines.append(f"  held by: nobody; {data['heldAfterRelease']}")
    elif claim:
        lines.append(f"  held by: {claim['describe']}")
    else:
        lines.append(f"  held by: {style('nobody', 'dim')}")
    if claim:
        manager, parent = claim["manager"] or "nobody", claim["for"] or "no Service"
        lines.append(
            f"  claim: IPAddress {address}, managed by {manager}, for {parent}, "
            f"{age(claim['created'])} old"
        )
    else:
        lines.append("  claim: none (no IPAddress object names it)")
    pool = data["pool"]
    lines.append(f"  pool: {pool}" if pool else "  pool: none (it lies in no IPPool)")
    if data["serviceCIDRs"]:
        lines.append(
            style(
                f"  inside ServiceCIDR {', '.join(data['serviceCIDRs'])}: a ClusterIP range", "warn"
            )
        )
    if not data["events"]:
        return [*lines, "  no lbipam Event names it"]
    return [*lines, "", *event_lines(data["events"], style, indent="", with_object=True)]


async def who_report(cluster: Cluster, view: View, address: str, style: Style) -> Report:
    try:
        canonical = str(ipaddress.ip_address(address.strip()))
    except ValueError:
        return Report(
            {"error": f"{address!r} is not an IP address"},
            [f"{address!r} is not an IPv4 or IPv6 address."],
            ok=False,
        )
    data = await who_data(cluster, view, canonical)
    return Report(data, who_lines(data, style))

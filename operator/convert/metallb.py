"""MetalLB 0.15 (metallb.io/v1beta1): IPAddressPools become IPPools; announcements are named.

MetalLB hands out every address of a CIDR (network and broadcast too), so its pools convert
with `allowFirstLastIPs: true`. Its priorities run the other way round from lbipam's: it tries
pools with a `serviceAllocation` that select the Service first, lowest `priority` value first
and 0 (unset) last, then the pools without one. The converted pools keep that order: without
`serviceAllocation` 0, with it and no priority 1, and above that ranked among the pools
converted together, lowest MetalLB value highest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from lbipam.convert.model import (
    Converted,
    Source,
    cidr,
    converted_pool,
    label_selector,
    namespaces_selector,
    same_network,
    unknown_fields,
)

GROUP = "metallb.io"
_POOL_FIELDS = {"addresses", "autoAssign", "avoidBuggyIPs", "serviceAllocation"}
_ALLOCATION_FIELDS = {"priority", "namespaces", "namespaceSelectors", "serviceSelectors"}
_PAIR = (
    "lbipam allocates addresses and does not announce them: keep MetalLB's speaker (stop only "
    "its controller, and keep its IPAddressPools and advertisements, which the speaker reads), "
    "or announce with kube-vip, Cilium's L2 announcements or BGP control plane, or your routers"
)
_ANNOUNCERS = {
    "L2Advertisement": "it announces addresses on the local network (ARP/NDP)",
    "BGPAdvertisement": "it announces addresses to BGP peers",
    "BGPPeer": "it sets up BGP sessions for announcements",
    "BFDProfile": "it tunes BGP sessions for announcements",
    "Community": "it names BGP communities for announcements",
}
SOURCE = Source("IPAddressPool", ("v1beta1",), _ANNOUNCERS, _PAIR)


def convert(objects: Sequence[Mapping[str, Any]]) -> list[Converted]:
    """Each object's conversion, in order; pools are ranked together (see the module's doc)."""
    ranks = _priority_ranks(o for o in objects if o.get("kind") == SOURCE.pool_kind)
    return SOURCE.convert(objects, lambda pool: _pool(pool, ranks))


def _priority_ranks(pools: Iterable[Mapping[str, Any]]) -> dict[int, int]:
    values = sorted(
        {_priority(p) for p in pools if (p.get("spec") or {}).get("serviceAllocation")} - {0}
    )
    return {0: 1} | {value: 1 + len(values) - index for index, value in enumerate(values)}


def _priority(pool: Mapping[str, Any]) -> int:
    return int(((pool.get("spec") or {}).get("serviceAllocation") or {}).get("priority") or 0)


def _pool(obj: Mapping[str, Any], ranks: Mapping[int, int]) -> Converted:
    spec = obj.get("spec") or {}
    lost = unknown_fields(spec, _POOL_FIELDS)
    notes: list[str] = []
    out: dict[str, Any] = {"addresses": [_entry(a, notes) for a in spec.get("addresses") or []]}
    out["allowFirstLastIPs"] = True
    if spec.get("autoAssign") is False:
        out["autoAssign"] = False
    if spec.get("avoidBuggyIPs"):
        out["avoidBuggyIPs"] = True
    allocation = spec.get("serviceAllocation")
    if allocation:
        out["priority"] = ranks[_priority(obj)]
        if allocation.get("priority"):
            notes.append(
                f"priority {out['priority']}: serviceAllocation.priority "
                f"{allocation['priority']} ranked among the pools converted together "
                "(convert them all in one run)"
            )
        lost += _restrictions(allocation, out)
    return converted_pool(obj, out, lost, notes)


def _entry(text: str, notes: list[str]) -> str:
    if "-" in text:
        start, _, stop = text.partition("-")
        return f"{start.strip()}-{stop.strip()}"
    try:
        written = cidr(text)
    except ValueError:
        return text.strip()  # the API server names what is wrong with it
    if not same_network(text, written):
        notes.append(f"{text.strip()} written {written}, the addresses MetalLB takes from it")
    return written


def _restrictions(allocation: Mapping[str, Any], out: dict[str, Any]) -> list[str]:
    """Who may use the pool; what one selector each cannot say is lost, and the pool closed."""
    lost = unknown_fields(allocation, _ALLOCATION_FIELDS, "spec.serviceAllocation")
    names = list(allocation.get("namespaces") or [])
    by_label = list(allocation.get("namespaceSelectors") or [])
    services = list(allocation.get("serviceSelectors") or [])
    if (names and by_label) or len(by_label) > 1:
        lost.append(
            "serviceAllocation: namespaces and namespaceSelectors (any one of them) cannot be "
            "said with one namespaceSelector"
        )
    elif names:
        out["namespaceSelector"] = namespaces_selector(names)
    elif by_label:
        out["namespaceSelector"] = label_selector(by_label[0])
    if len(services) > 1:
        lost.append(
            "serviceAllocation.serviceSelectors: any one of several selectors cannot be said "
            "with one serviceSelector"
        )
    elif services:
        out["serviceSelector"] = label_selector(services[0])
    if len(lost) > 0:
        # Closed rather than open to Services MetalLB kept out: write the selector, then reopen.
        out["autoAssign"] = False
        lost.append("autoAssign set to false until the selectors above are written by hand")
    return lost

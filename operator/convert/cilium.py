"""Cilium 1.15 (cilium.io/v2alpha1 and v2): CiliumLoadBalancerIPPools become IPPools.

Cilium 1.15 reserves the first and last address of a CIDR block of 4 or more addresses unless
`allowFirstLastIPs` is "Yes" (its operator compares with "Yes"; 1.16 turned the default round and
compares with "No"), IPv6 too; lbipam's `allowFirstLastIPs: false` skips them in IPv4 CIDRs only,
so IPv6 ones get `exclude` entries. Unset is read as 1.15 reads it, with a note: reserving is the
side that moves nobody, since a Service already holding an IPv4 end keeps it. Cilium selects
Services by two labels of its own making as well: the namespace one becomes a namespaceSelector,
the name one cannot be said.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from lbipam.convert.model import (
    NAMESPACE_NAME_LABEL,
    Converted,
    Source,
    cidr,
    converted_pool,
    label_selector,
    unknown_fields,
)

GROUP = "cilium.io"
SERVICE_NAMESPACE_LABEL = "io.kubernetes.service.namespace"
SERVICE_NAME_LABEL = "io.kubernetes.service.name"
_POOL_FIELDS = {"blocks", "cidrs", "allowFirstLastIPs", "disabled", "serviceSelector"}
_PAIR = (
    "lbipam allocates addresses and does not announce them: keep Cilium's agents announcing "
    "(L2 announcements and BGP control plane work from the Services' addresses, whoever "
    "allocated them), or announce with kube-vip or your routers"
)
_ANNOUNCERS = {
    "CiliumL2AnnouncementPolicy": "it announces addresses on the local network (ARP/NDP)",
    "CiliumBGPPeeringPolicy": "it announces addresses to BGP peers",
    "CiliumBGPClusterConfig": "it sets up BGP sessions for announcements",
    "CiliumBGPPeerConfig": "it sets up BGP sessions for announcements",
    "CiliumBGPAdvertisement": "it announces addresses to BGP peers",
}
_UNSET_ENDS = (
    "allowFirstLastIPs unset: Cilium 1.15 reserves each CIDR's first and last address, 1.16 "
    "and later hand them out; converted as reserved (allowFirstLastIPs: false): write true "
    "if your Cilium is 1.16 or later"
)
SOURCE = Source("CiliumLoadBalancerIPPool", ("v2alpha1", "v2"), _ANNOUNCERS, _PAIR)


def convert(objects: Sequence[Mapping[str, Any]]) -> list[Converted]:
    """Each object's conversion, in order."""
    return SOURCE.convert(objects, _pool)


def _pool(obj: Mapping[str, Any]) -> Converted:
    spec = obj.get("spec") or {}
    lost = unknown_fields(spec, _POOL_FIELDS)
    notes: list[str] = []
    reserve = spec.get("allowFirstLastIPs") != "Yes"
    if "allowFirstLastIPs" not in spec:
        notes.append(_UNSET_ENDS)
    addresses: list[str] = []
    exclude: list[str] = []
    # `cidrs` is the deprecated name of `blocks`; Cilium 1.15 reads both.
    for block in [*(spec.get("blocks") or []), *(spec.get("cidrs") or [])]:
        entry = _block(block)
        if entry is None:
            lost.append(f"block {block!r}: neither a cidr nor a start")
            continue
        addresses.append(entry)
        if reserve:
            exclude += _reserved_v6(entry)
    out: dict[str, Any] = {"addresses": addresses}
    if exclude:
        out["exclude"] = exclude
        notes.append("the first and last address of each IPv6 CIDR excluded, as Cilium reserves")
    out["allowFirstLastIPs"] = not reserve
    if spec.get("disabled"):
        out["disabled"] = True
    if spec.get("serviceSelector") is not None:
        lost += _selectors(spec["serviceSelector"], out)
    return converted_pool(obj, out, lost, notes)


def _reserved_v6(entry: str) -> list[str]:
    """The ends Cilium reserves in an IPv6 CIDR of 4 addresses or more, which lbipam would not."""
    try:
        network = ipaddress.ip_network(entry)
    except ValueError:  # a range, a single address, or garbage for the API server to name
        return []
    if network.version != 6 or network.num_addresses < 4:
        return []
    return [str(network.network_address), str(network.broadcast_address)]


def _block(block: Mapping[str, Any]) -> str | None:
    if block.get("cidr"):
        try:
            return cidr(str(block["cidr"]))
        except ValueError:
            return str(block["cidr"]).strip()  # the API server names what is wrong with it
    if block.get("start"):
        start, stop = str(block["start"]).strip(), str(block.get("stop") or "").strip()
        return f"{start}-{stop}" if stop else start
    return None


def _selectors(raw: Mapping[str, Any], out: dict[str, Any]) -> list[str]:
    """Cilium's serviceSelector: Service labels, plus its namespace and name pseudo-labels."""
    labels = dict(raw.get("matchLabels") or {})
    expressions = [dict(e) for e in raw.get("matchExpressions") or []]
    lost = []
    if SERVICE_NAME_LABEL in labels or any(e.get("key") == SERVICE_NAME_LABEL for e in expressions):
        lost.append(
            f"serviceSelector on {SERVICE_NAME_LABEL}: an IPPool selects Services by their own "
            "labels only; label the Services and select that label, or request the addresses"
        )
        labels.pop(SERVICE_NAME_LABEL, None)
        expressions = [e for e in expressions if e.get("key") != SERVICE_NAME_LABEL]
        out["autoAssign"] = False
        lost.append("autoAssign set to false until the selector above is written by hand")
    services = label_selector(
        {
            "matchLabels": {k: v for k, v in labels.items() if k != SERVICE_NAMESPACE_LABEL},
            "matchExpressions": [e for e in expressions if e.get("key") != SERVICE_NAMESPACE_LABEL],
        }
    )
    namespaces = label_selector(
        {
            "matchLabels": {NAMESPACE_NAME_LABEL: labels[SERVICE_NAMESPACE_LABEL]}
            if SERVICE_NAMESPACE_LABEL in labels
            else {},
            "matchExpressions": [
                {**e, "key": NAMESPACE_NAME_LABEL}
                for e in expressions
                if e.get("key") == SERVICE_NAMESPACE_LABEL
            ],
        }
    )
    if services:
        out["serviceSelector"] = services
    if namespaces:
        out["namespaceSelector"] = namespaces
    return lost

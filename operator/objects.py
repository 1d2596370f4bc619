"""Kubernetes objects (plain dicts as Kopf delivers them) to the dataclasses `ipam` decides on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lbipam.ipam.pool import PoolSpec
from lbipam.ipam.requests import Port, ServiceKey, ServiceRequest
from lbipam.ipam.selectors import Selector
from lbipam.settings import Settings

GROUP = "lbipam.io"
VERSION = "v1alpha1"
POOLS = "ippools"
ANNOTATION_IPS = f"{GROUP}/ips"
ANNOTATION_POOL = f"{GROUP}/pool"
ANNOTATION_SHARING_KEY = f"{GROUP}/sharing-key"
CONDITION_TYPE = f"{GROUP}/AddressAllocated"
FAMILIES = {"IPv4": 4, "IPv6": 6}
# What a view keeps of metadata: managedFields and the rest would keep each whole object alive.
_KEPT_METADATA = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "labels",
    "annotations",
)


@dataclass(frozen=True)
class ServiceView:
    """What the operator keeps of one Service: its request and what its status shows now."""

    key: ServiceKey
    uid: str
    handled: bool
    request: ServiceRequest
    condition: Mapping[str, Any] | None  # our entry in status.conditions, if any
    body: Mapping[str, Any]  # metadata and spec, for the NetworkPolicy builder

    @property
    def resource_version(self) -> str | None:
        version = self.body["metadata"].get("resourceVersion")
        return str(version) if version else None

    @property
    def reference(self) -> dict[str, str]:
        """The Service as an Event's involvedObject."""
        return {
            "apiVersion": "v1",
            "namespace": self.key.namespace,
            "name": self.key.name,
            "uid": self.uid,
        }


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


def service_key(body: Mapping[str, Any]) -> ServiceKey:
    meta = body["metadata"]
    return ServiceKey(meta["namespace"], meta["name"])


def is_handled(body: Mapping[str, Any], settings: Settings) -> bool:
    """True when the Service is a LoadBalancer of our class (or of no class, if we are default)."""
    spec = body.get("spec") or {}
    if spec.get("type") != "LoadBalancer":
        return False
    lb_class = spec.get("loadBalancerClass")
    if lb_class is None:
        return settings.default_class
    return bool(lb_class == settings.lb_class)


def held_addresses(body: Mapping[str, Any]) -> tuple[str, ...]:
    ingress = ((body.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return tuple(entry["ip"] for entry in ingress if isinstance(entry, dict) and entry.get("ip"))


def our_condition(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for condition in (body.get("status") or {}).get("conditions") or []:
        if condition.get("type") == CONDITION_TYPE:
            return dict(condition)
    return None


def service_request(
    body: Mapping[str, Any], namespace_labels: Mapping[str, str] | None = None
) -> ServiceRequest:
    meta = body["metadata"]
    spec = body.get("spec") or {}
    annotations = meta.get("annotations") or {}
    families = tuple(FAMILIES[f] for f in spec.get("ipFamilies") or ["IPv4"] if f in FAMILIES)
    ports = frozenset(
        Port(int(p["port"]), p.get("protocol") or "TCP")
        for p in spec.get("ports") or []
        if isinstance(p, dict) and "port" in p
    )
    return ServiceRequest(
        key=service_key(body),
        created=meta.get("creationTimestamp") or "",
        labels=dict(meta.get("labels") or {}),
        namespace_labels=dict(namespace_labels or {}),
        pools=_split(annotations.get(ANNOTATION_POOL)),
        load_balancer_ip=spec.get("loadBalancerIP") or None,
        requested_ips=_split(annotations.get(ANNOTATION_IPS)),
        sharing_key=(annotations.get(ANNOTATION_SHARING_KEY) or "").strip() or None,
        ports=ports,
        families=families or (4,),
        family_policy=spec.get("ipFamilyPolicy") or "SingleStack",
        held=held_addresses(body),
    )


def service_view(
    body: Mapping[str, Any], settings: Settings, namespace_labels: Mapping[str, str] | None
) -> ServiceView:
    meta = body["metadata"]
    return ServiceView(
        key=service_key(body),
        uid=meta.get("uid", ""),
        handled=is_handled(body, settings),
        request=service_request(body, namespace_labels),
        condition=our_condition(body),
        body={
            "metadata": {k: meta[k] for k in _KEPT_METADATA if k in meta},
            "spec": dict(body.get("spec") or {}),
        },
    )


def _selector(raw: Any) -> Selector | None:
    return None if raw is None else Selector.from_dict(raw)


def pool_spec(body: Mapping[str, Any]) -> PoolSpec:
    """The registry's view of an IPPool; a pool being deleted hands out nothing new."""
    meta = body["metadata"]
    spec = body.get("spec") or {}
    return PoolSpec(
        name=meta["name"],
        addresses=tuple(spec.get("addresses") or ()),
        exclude=tuple(spec.get("exclude") or ()),
        avoid_buggy_ips=bool(spec.get("avoidBuggyIPs", False)),
        auto_assign=bool(spec.get("autoAssign", True)),
        disabled=bool(spec.get("disabled", False)) or bool(meta.get("deletionTimestamp")),
        priority=int(spec.get("priority", 0)),
        service_selector=_selector(spec.get("serviceSelector")),
        namespace_selector=_selector(spec.get("namespaceSelector")),
        created=meta.get("creationTimestamp") or "",
    )

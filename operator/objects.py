"""Kubernetes objects (plain dicts, as Kopf delivers them) to views and `ipam` requests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from lbipam.api import (
    ANNOTATION_IPS,
    ANNOTATION_POOL,
    ANNOTATION_SHARING_KEY,
    CLAIM_MANAGER_LABEL,
    FINALIZER,
    LEGACY_SOURCE_RANGES,
    POOL_API_VERSION,
    SERVICE_CONDITION,
)
from lbipam.ipam.addresses import FAMILY_NAMES
from lbipam.ipam.pool import AllocationOrder, PoolSpec
from lbipam.ipam.requests import Port, ServiceKey, ServiceRequest
from lbipam.ipam.selectors import Selector
from lbipam.settings import Settings

_NO_LABELS: Mapping[str, str] = MappingProxyType({})
_FAMILY_NUMBERS = {name: family for family, name in FAMILY_NAMES.items()}
# What a view keeps of the body (the policy builder's inputs and the versions): at 20,000
# Services, managedFields, kubectl's last-applied annotation and the rest of the spec would be
# tens of MiB kept for nothing.
_KEPT_METADATA = ("name", "namespace", "uid", "resourceVersion", "generation")
_KEPT_ANNOTATIONS = (LEGACY_SOURCE_RANGES,)
_KEPT_SPEC = ("selector", "ports", "externalTrafficPolicy", "loadBalancerSourceRanges")


@dataclass(frozen=True, slots=True)
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


def _copy(labels: Mapping[str, str] | None) -> Mapping[str, str]:
    # Most Services have no labels: one shared empty mapping instead of 20,000 empty dicts.
    return dict(labels) if labels else _NO_LABELS


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
        if condition.get("type") == SERVICE_CONDITION:
            return dict(condition)
    return None


def service_request(
    body: Mapping[str, Any], namespace_labels: Mapping[str, str] | None = None
) -> ServiceRequest:
    meta = body["metadata"]
    spec = body.get("spec") or {}
    annotations = meta.get("annotations") or {}
    families = tuple(
        _FAMILY_NUMBERS[f] for f in spec.get("ipFamilies") or ["IPv4"] if f in _FAMILY_NUMBERS
    )
    ports = frozenset(
        Port(int(p["port"]), p.get("protocol") or "TCP")
        for p in spec.get("ports") or []
        if isinstance(p, dict) and "port" in p
    )
    return ServiceRequest(
        key=service_key(body),
        created=meta.get("creationTimestamp") or "",
        labels=_copy(meta.get("labels")),
        namespace_labels=_copy(namespace_labels),
        pools=_split(annotations.get(ANNOTATION_POOL)),
        load_balancer_ip=spec.get("loadBalancerIP") or None,
        requested_ips=_split(annotations.get(ANNOTATION_IPS)),
        sharing_key=(annotations.get(ANNOTATION_SHARING_KEY) or "").strip() or None,
        ports=ports,
        families=families or (4,),
        family_policy=spec.get("ipFamilyPolicy") or "SingleStack",
        held=held_addresses(body),
    )


def service_view(body: Mapping[str, Any], settings: Settings) -> ServiceView:
    """The view of a Service; its namespace's labels are added by the Service controller."""
    meta = body["metadata"]
    return ServiceView(
        key=service_key(body),
        uid=meta.get("uid", ""),
        handled=is_handled(body, settings),
        request=service_request(body),
        condition=our_condition(body),
        body={"metadata": _kept_metadata(meta), "spec": _kept(body.get("spec") or {}, _KEPT_SPEC)},
    )


def _kept(mapping: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    return {k: mapping[k] for k in keys if k in mapping}


def _kept_metadata(meta: Mapping[str, Any]) -> dict[str, Any]:
    kept = _kept(meta, _KEPT_METADATA)
    annotations = _kept(meta.get("annotations") or {}, _KEPT_ANNOTATIONS)
    if annotations:
        kept["annotations"] = annotations
    return kept


def _selector(raw: Any) -> Selector | None:
    return None if raw is None else Selector.from_dict(raw)


@dataclass(frozen=True)
class PoolView:
    """What the operator keeps of one IPPool object besides its spec."""

    name: str
    uid: str
    generation: int
    deleting: bool
    finalizers: tuple[str, ...]
    resource_version: str
    status: Mapping[str, Any]

    @property
    def reference(self) -> dict[str, str]:
        """The pool as an Event's involvedObject."""
        return {"apiVersion": POOL_API_VERSION, "name": self.name, "uid": self.uid}


def pool_view(body: Mapping[str, Any]) -> PoolView:
    meta = body["metadata"]
    return PoolView(
        name=meta["name"],
        uid=meta.get("uid", ""),
        generation=int(meta.get("generation") or 0),
        deleting=bool(meta.get("deletionTimestamp")),
        finalizers=tuple(meta.get("finalizers") or ()),
        resource_version=meta.get("resourceVersion", ""),
        status=dict(body.get("status") or {}),
    )


def pool_spec(body: Mapping[str, Any]) -> PoolSpec:
    """The registry's view of an IPPool; never raises: a spec it cannot read carries `error`.

    A pool being deleted hands out nothing new; one without our finalizer is not protected.
    """
    meta = body["metadata"]
    spec = body.get("spec") or {}
    common = {
        "name": meta["name"],
        "created": meta.get("creationTimestamp") or "",
        "disabled": bool(spec.get("disabled", False)) or bool(meta.get("deletionTimestamp")),
        "protected": FINALIZER in (meta.get("finalizers") or ()),
    }
    try:
        return PoolSpec(
            addresses=tuple(spec.get("addresses") or ()),
            exclude=tuple(spec.get("exclude") or ()),
            avoid_buggy_ips=bool(spec.get("avoidBuggyIPs", False)),
            allow_first_last_ips=bool(spec.get("allowFirstLastIPs", False)),
            auto_assign=bool(spec.get("autoAssign", True)),
            priority=int(spec.get("priority", 0)),
            allocation_order=AllocationOrder.parse(spec.get("allocationOrder")),
            service_selector=_selector(spec.get("serviceSelector")),
            namespace_selector=_selector(spec.get("namespaceSelector")),
            **common,
        )
    except (ValueError, TypeError) as error:
        return PoolSpec(addresses=(), error=str(error), **common)


@dataclass(frozen=True, slots=True)
class ClaimView:
    """One IPAddress object: the address it claims, and for whom."""

    address: str
    uid: str
    manager: str  # its ipaddress.kubernetes.io/managed-by label
    parent: ServiceKey | None  # the Service in its parentRef, if a Service
    created: str = ""  # creationTimestamp

    @property
    def ours(self) -> bool:
        return self.manager == CLAIM_MANAGER_LABEL[1]

    def describe(self) -> str:
        """Who holds the address, for a user reading an AddressInUse condition."""
        if self.manager == "ipallocator.k8s.io" and self.parent is not None:
            return f"the ClusterIP of Service {self.parent}"
        if self.ours and self.parent is not None:
            return f"Service {self.parent}"
        holder = f" for {self.parent}" if self.parent is not None else ""
        return f"IPAddress {self.address}{holder} (managed by {self.manager or 'nobody'})"


def claim_manifest(address: str, key: ServiceKey) -> dict[str, Any]:
    """Our IPAddress claim of `address` for the Service: named by the address, as ClusterIPs are."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IPAddress",
        "metadata": {"name": address, "labels": dict([CLAIM_MANAGER_LABEL])},
        "spec": {
            "parentRef": {
                "group": "",
                "resource": "services",
                "namespace": key.namespace,
                "name": key.name,
            }
        },
    }


def claim_view(body: Mapping[str, Any]) -> ClaimView:
    meta = body.get("metadata") or {}
    parent = (body.get("spec") or {}).get("parentRef") or {}
    is_service = parent.get("resource") == "services" and not parent.get("group")
    return ClaimView(
        address=meta.get("name", ""),
        uid=meta.get("uid", ""),
        manager=(meta.get("labels") or {}).get(CLAIM_MANAGER_LABEL[0], ""),
        parent=ServiceKey(parent.get("namespace", ""), parent["name"]) if is_service else None,
        created=meta.get("creationTimestamp") or "",
    )

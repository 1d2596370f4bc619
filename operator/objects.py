"""Kubernetes objects (plain dicts, as Kopf delivers them) to views and `ipam` requests."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from lbipam.api import (
    ANNOTATION_IPS,
    ANNOTATION_POOL,
    ANNOTATION_SHARING_CROSS_NAMESPACE,
    ANNOTATION_SHARING_KEY,
    CLAIM_HELD_SINCE,
    CLAIM_MANAGER_LABEL,
    FINALIZER,
    FOREIGN_IPS,
    FOREIGN_POOL,
    FOREIGN_SHARING_CROSS_NAMESPACE,
    FOREIGN_SHARING_KEY,
    LEGACY_SOURCE_RANGES,
    POOL_API_VERSION,
    SERVICE_CONDITION,
)
from lbipam.ipam.addresses import FAMILY_NAMES, parse_address
from lbipam.ipam.durations import parse_duration
from lbipam.ipam.pool import AllocationOrder, PoolSpec
from lbipam.ipam.requests import Port, ServiceKey, ServiceRequest
from lbipam.ipam.reservations import Reservation
from lbipam.ipam.selectors import Selector
from lbipam.ipam.sharing import ANYONE
from lbipam.settings import Settings

_NO_LABELS: Mapping[str, str] = MappingProxyType({})
_FAMILY_NUMBERS = {name: family for family, name in FAMILY_NAMES.items()}
# A namespace's name: an RFC 1123 label (apimachinery's IsDNS1123Label).
_NAMESPACE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
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

    def with_status_of(self, written: Mapping[str, Any]) -> ServiceView:
        """This view with the status and version of `written`, the Service as our own status
        write left it. The write was conditional on this view's version: nothing else moved."""
        meta = {**self.body["metadata"], "resourceVersion": written["metadata"]["resourceVersion"]}
        return replace(
            self,
            request=replace(self.request, held=held_addresses(written)),
            condition=our_condition(written),
            body={**self.body, "metadata": meta},
        )

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
    body: Mapping[str, Any],
    namespace_labels: Mapping[str, str] | None = None,
    foreign: Iterable[str] = (),
    key: ServiceKey | None = None,
) -> ServiceRequest:
    """What the Service asks for; `foreign` names the controllers whose annotations count too,
    `key` the Service's key when the caller holds it already (see `service_view`)."""
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
    controllers = tuple(foreign)
    ips = _annotated(annotations, ANNOTATION_IPS, FOREIGN_IPS, controllers, _address_set)
    pools = _annotated(annotations, ANNOTATION_POOL, FOREIGN_POOL, controllers, _name_set)
    sharing = _annotated(
        annotations, ANNOTATION_SHARING_KEY, FOREIGN_SHARING_KEY, controllers, str.strip
    )
    crossing = _annotated(
        annotations,
        ANNOTATION_SHARING_CROSS_NAMESPACE,
        FOREIGN_SHARING_CROSS_NAMESPACE,
        controllers,
        _name_set,
    )
    # The registry names lbipam.io/ips when it cannot read an address: name the one asked.
    unreadable = _unreadable(ips) if ips.where != ANNOTATION_IPS else None
    reasons = (ips.invalid or unreadable, pools.invalid, sharing.invalid, _bad_namespaces(crossing))
    invalid = [why for why in reasons if why]
    return ServiceRequest(
        key=key or service_key(body),
        created=meta.get("creationTimestamp") or "",
        labels=_copy(meta.get("labels")),
        namespace_labels=_copy(namespace_labels),
        pools=_split(pools.text),
        load_balancer_ip=spec.get("loadBalancerIP") or None,
        requested_ips=_split(ips.text),
        sharing_key=(sharing.text or "").strip() or None,
        share_with=_name_set(crossing.text or ""),
        ports=ports,
        families=families or (4,),
        family_policy=spec.get("ipFamilyPolicy") or "SingleStack",
        held=held_addresses(body),
        invalid="; ".join(invalid) or None,
    )


@dataclass(frozen=True, slots=True)
class _Annotated:
    """One kind of request as the annotations ask it: the value used, where from, why refused."""

    text: str | None = None
    where: str | None = None
    invalid: str | None = None


def _annotated(
    annotations: Mapping[str, str],
    own: str,
    foreign: Mapping[str, tuple[str, ...]],
    controllers: tuple[str, ...],
    meaning: Callable[[str], Hashable],
) -> _Annotated:
    """lbipam's annotation, else the first foreign one that asks; all that ask must agree.

    Of one controller's names only the first present counts, as that controller reads them
    (its stable name hides its deprecated one). An empty value asks nothing.
    """
    names = [own] if own in annotations else []
    for controller in controllers:
        names += [n for n in foreign.get(controller, ()) if n in annotations][:1]
    asking = [(name, str(annotations[name])) for name in names if str(annotations[name]).strip()]
    if not asking:
        return _Annotated()
    (first, text), others = asking[0], asking[1:]
    for name, other in others:
        if meaning(other) != meaning(text):
            return _Annotated(
                text,
                first,
                f'{first} "{text.strip()}" and {name} "{other.strip()}" disagree; '
                "remove one of them or make them equal",
            )
    return _Annotated(text, first)


def _address_set(text: str) -> frozenset[Hashable]:
    """The addresses a list names, however each is spelled (garbage compares as written)."""
    parsed: set[Hashable] = set()
    for part in _split(text):
        try:
            parsed.add(parse_address(part))
        except ValueError:
            parsed.add(part)
    return frozenset(parsed)


def _name_set(text: str) -> frozenset[str]:
    return frozenset(_split(text))


def _bad_namespaces(crossing: _Annotated) -> str | None:
    """Why a list of namespaces to share with cannot be read, named by its annotation."""
    if crossing.invalid:
        return crossing.invalid
    bad = [n for n in _split(crossing.text) if n != ANYONE and not _NAMESPACE_NAME.fullmatch(n)]
    if not bad:
        return None
    quoted = ", ".join(f'"{name}"' for name in bad)
    return (
        f"{crossing.where}: {quoted} "
        f"{'is not a namespace name' if len(bad) == 1 else 'are not namespace names'} "
        f"(lower-case letters, digits and '-', at most 63) or {ANYONE}"
    )


def _unreadable(ips: _Annotated) -> str | None:
    """Why a list of addresses cannot be read, named by the annotation it came from."""
    for part in _split(ips.text):
        try:
            parse_address(part)
        except ValueError as error:
            return f"{ips.where}: {error}"
    return None


def service_view(
    body: Mapping[str, Any], settings: Settings, key: ServiceKey | None = None
) -> ServiceView:
    """The view of a Service; its namespace's labels are added by the Service controller.

    `key` is the key the operator's tables hold for the Service already, when they do: each
    table keeps the key it was first given, so a fresh key per event would leave each Service
    with as many copies of its key (and name) as it had edits and tables, a memory that rose
    for hours under churn (bench/README.md § Soak)."""
    meta = body["metadata"]
    key = key or service_key(body)
    return ServiceView(
        key=key,
        uid=meta.get("uid", ""),
        handled=is_handled(body, settings),
        request=service_request(body, foreign=settings.foreign_controllers, key=key),
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


def _reservations(raw: Iterable[Any]) -> tuple[Reservation, ...]:
    """spec.reservations; ValueError names an entry the API server would have refused."""
    result = []
    for index, entry in enumerate(raw):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("namespace"), str):
            raise ValueError(f"reservations[{index}]: needs addresses and a namespace")
        service = entry.get("service")
        result.append(
            Reservation(
                addresses=tuple(entry.get("addresses") or ()),
                namespace=entry["namespace"],
                service=service if isinstance(service, str) and service else None,
            )
        )
    return tuple(result)


def _limit(raw: Any) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise ValueError(f"perNamespaceLimit {raw!r} must be a whole number of 0 or more")
    return raw


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
            release_hold=parse_duration(str(spec.get("releaseHold") or "0"), "releaseHold"),
            service_selector=_selector(spec.get("serviceSelector")),
            namespace_selector=_selector(spec.get("namespaceSelector")),
            reservations=_reservations(spec.get("reservations") or ()),
            per_namespace_limit=_limit(spec.get("perNamespaceLimit")),
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
    # Set on a hold after release: when its Service let the address go (RFC 3339).
    held_since: str = ""

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


def claim_manifest(address: str, key: ServiceKey, held_since: str = "") -> dict[str, Any]:
    """Our IPAddress claim of `address` for the Service: named by the address, as ClusterIPs are;
    with `held_since`, a hold after release that began then."""
    meta: dict[str, Any] = {"name": address, "labels": dict([CLAIM_MANAGER_LABEL])}
    if held_since:
        meta["annotations"] = {CLAIM_HELD_SINCE: held_since}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IPAddress",
        "metadata": meta,
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
        held_since=(meta.get("annotations") or {}).get(CLAIM_HELD_SINCE, ""),
    )


# The address types a Node answers on itself; Hostname and InternalDNS are names.
NODE_ADDRESS_TYPES = ("InternalIP", "ExternalIP")


def node_addresses(body: Mapping[str, Any]) -> tuple[str, ...]:
    """A Node's own IP addresses (InternalIP, ExternalIP), sorted, each once."""
    found = set()
    for entry in (body.get("status") or {}).get("addresses") or ():
        if entry.get("type") in NODE_ADDRESS_TYPES:
            try:
                found.add(str(ipaddress.ip_address(entry.get("address", ""))))
            except ValueError:
                continue  # the kubelet wrote it; an odd one is not ours to judge
    return tuple(sorted(found))

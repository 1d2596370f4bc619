"""Service → NetworkPolicy enforcing `spec.loadBalancerSourceRanges`.

Pure: plain dicts in, plain dicts out, no Kubernetes client. The caller writes `PolicyPlan.manifest`
(or deletes the policy named `PolicyPlan.name` when it is None) and turns `warnings` into Events.

Decisions where Kubernetes leaves room:
- Ranges come from `spec.loadBalancerSourceRanges` when it is non-empty, else from the legacy
  annotation; this is how kube-proxy and the cloud providers read them.
- A `/0` entry makes its family unrestricted. When every family that has entries is unrestricted
  there is nothing to enforce and no policy. A family without any entry is denied: the list is an
  allow-list, and a policy has no other way to say "this family only".
- Unparseable entries are reported and skipped. When entries were given but none parses, the
  policy still exists and admits no external source: failing open would expose the Service the
  user meant to restrict.
- With `externalTrafficPolicy: Cluster` there is no policy, only a warning: traffic forwarded
  between nodes arrives SNATed to a node address, and a policy cannot tell allowed clients from
  others by it (dropping them all is worse than enforcing nothing beyond kube-proxy's filter).
- Selecting the backends isolates them for all ingress, not only the load-balancer path: ports
  of those pods that no rule here names become unreachable unless another policy admits them.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lbipam.api import LEGACY_SOURCE_RANGES, MANAGED_BY_LABEL, POLICY_PREFIX

MAX_NAME_LENGTH = 253  # DNS subdomain, the limit for object names
_HASH_LENGTH = 10

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class PolicyWarning:
    reason: str  # "SourceRangesNotEnforceable" | "InvalidSourceRanges" | "NoSelector"
    message: str


@dataclass(frozen=True)
class PolicyPlan:
    name: str
    manifest: dict[str, Any] | None  # None: no policy should exist under `name`
    warnings: tuple[PolicyWarning, ...]


def policy_name(service_name: str) -> str:
    """`lbipam-<service-name>`, shortened with a stable hash of the full name beyond 253 chars."""
    name = POLICY_PREFIX + service_name
    if len(name) <= MAX_NAME_LENGTH:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:_HASH_LENGTH]
    # The cut may land on a separator, and a DNS subdomain must not end in one before the suffix.
    head = name[: MAX_NAME_LENGTH - _HASH_LENGTH - 1].rstrip("-.")
    return f"{head}-{digest}"


_NO_SELECTOR = PolicyWarning(
    "NoSelector",
    "loadBalancerSourceRanges cannot be enforced: the Service has no spec.selector, so there "
    "are no backend pods to protect with a NetworkPolicy. Add a selector, or protect the "
    "endpoints' pods with your own NetworkPolicy.",
)
_NOT_ENFORCEABLE = PolicyWarning(
    "SourceRangesNotEnforceable",
    "With externalTrafficPolicy: Cluster, a node that forwards load-balancer or node-port "
    "traffic to a pod on another node replaces the client's address with its own, so a "
    "NetworkPolicy admitting only loadBalancerSourceRanges would drop allowed clients. lbipam "
    "writes no NetworkPolicy for this Service: kube-proxy still filters the LoadBalancer IP "
    "(ipMode VIP), but the node ports and the pod IPs are open to every source. Set "
    "externalTrafficPolicy: Local to have lbipam close them too.",
)


def build_policy(service: Mapping[str, Any], *, allow_cluster: bool = True) -> PolicyPlan:
    """The NetworkPolicy `service` needs (None when its ranges restrict nothing), with warnings."""
    metadata: Mapping[str, Any] = service["metadata"]
    spec: Mapping[str, Any] = service.get("spec") or {}
    name = policy_name(metadata["name"])
    warnings: list[PolicyWarning] = []

    source, entries = _source_range_entries(metadata, spec)
    networks, invalid = _parse_ranges(entries)
    if invalid:
        warnings.append(_invalid_ranges_warning(source, invalid))
    if not entries or _unrestricted(networks, any_invalid=bool(invalid)):
        return PolicyPlan(name, None, tuple(warnings))
    selector: Mapping[str, str] = spec.get("selector") or {}
    if not selector:
        return PolicyPlan(name, None, (*warnings, _NO_SELECTOR))
    if spec.get("externalTrafficPolicy", "Cluster") != "Local":
        return PolicyPlan(name, None, (*warnings, _NOT_ENFORCEABLE))
    rules = _ingress_rules(networks, _target_ports(spec.get("ports") or []), allow_cluster)
    return PolicyPlan(name, _manifest(name, metadata, selector, rules), tuple(warnings))


def _ingress_rules(
    networks: list[_Network], ports: list[dict[str, Any]], allow_cluster: bool
) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    if networks:
        # Never emit an empty `from`: that would admit every source.
        blocks = [{"ipBlock": {"cidr": str(n)}} for n in networks]
        rules.append({"from": blocks, "ports": ports})
    if allow_cluster:
        # loadBalancerSourceRanges only filters traffic arriving through the load-balancer address,
        # but this policy guards the backends on every path: without this rule, pods reaching the
        # Service through its ClusterIP or a node port (and in-cluster probes) would be cut off.
        rules.append({"from": [{"namespaceSelector": {}}], "ports": _copy(ports)})
    return rules


def _manifest(
    name: str,
    service: Mapping[str, Any],
    selector: Mapping[str, str],
    rules: list[dict[str, Any]],
) -> dict[str, Any]:
    """The policy, owned by the Service (`service` is its metadata) so it goes with it."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": name,
            "namespace": service["namespace"],
            "labels": {MANAGED_BY_LABEL[0]: MANAGED_BY_LABEL[1]},
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "name": service["name"],
                    "uid": service["uid"],
                    "controller": True,
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "spec": {
            "podSelector": {"matchLabels": dict(sorted(selector.items()))},
            "policyTypes": ["Ingress"],
            "ingress": rules,
        },
    }


def _source_range_entries(
    metadata: Mapping[str, Any], spec: Mapping[str, Any]
) -> tuple[str, list[str]]:
    """Where the ranges come from (for messages) and their raw entries, blanks dropped."""
    field: list[str] = spec.get("loadBalancerSourceRanges") or []
    if field:
        return "spec.loadBalancerSourceRanges", [e.strip() for e in field if e.strip()]
    annotations: Mapping[str, str] = metadata.get("annotations") or {}
    raw = annotations.get(LEGACY_SOURCE_RANGES, "")
    return f"annotation {LEGACY_SOURCE_RANGES}", [e.strip() for e in raw.split(",") if e.strip()]


def _parse_ranges(entries: Iterable[str]) -> tuple[list[_Network], list[str]]:
    """Valid networks (host bits masked, deduplicated, IPv4 first, in order) and bad entries."""
    networks: set[_Network] = set()
    invalid: list[str] = []
    for entry in entries:
        network = _parse_cidr(entry)
        if network is None:
            invalid.append(entry)
        else:
            networks.add(network)
    # A /0 covers its whole family, so the family's other entries would only add noise.
    open_families = {n.version for n in networks if n.prefixlen == 0}
    kept = (n for n in networks if n.version not in open_families or n.prefixlen == 0)
    return sorted(kept, key=lambda n: (n.version, int(n.network_address), n.prefixlen)), invalid


def _parse_cidr(entry: str) -> _Network | None:
    # Stricter than `ipaddress`: like Kubernetes, demand an explicit prefix length, and refuse the
    # netmask and zone forms that Go's CIDR parsing (and so other implementations) would reject.
    address, slash, prefix = entry.partition("/")
    if not slash or not (prefix.isascii() and prefix.isdigit()) or "%" in address:
        return None
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None


def _unrestricted(networks: list[_Network], *, any_invalid: bool) -> bool:
    # Invalid entries leave the user's intent unknown, so they keep the policy (fail closed).
    return bool(networks) and not any_invalid and all(n.prefixlen == 0 for n in networks)


def _invalid_ranges_warning(source: str, invalid: list[str]) -> PolicyWarning:
    listed = ", ".join(repr(e) for e in invalid)
    return PolicyWarning(
        "InvalidSourceRanges",
        f"Ignored invalid entries in {source}: {listed}. Each entry must be a CIDR such as "
        "10.0.0.0/8 or 2001:db8::/32 (a single address as 192.0.2.7/32 or 2001:db8::7/128); "
        "traffic they were meant to admit is denied until they are fixed.",
    )


def _target_ports(service_ports: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """NetworkPolicy ports for the Service's target ports, deduplicated in a stable order."""
    found: set[tuple[str, int | str]] = set()
    for sp in service_ports:
        target: int | str = sp.get("targetPort", sp["port"])
        found.add((sp.get("protocol") or "TCP", target))
    return [{"protocol": protocol, "port": port} for protocol, port in sorted(found, key=_port_key)]


def _port_key(port: tuple[str, int | str]) -> tuple[str, int, str]:
    # Numbers before names within a protocol: int and str do not compare with each other.
    protocol, value = port
    return (protocol, value, "") if isinstance(value, int) else (protocol, 1 << 16, value)


def _copy(ports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Rules must not share dicts: a caller editing one rule would silently edit the other.
    return [dict(p) for p in ports]

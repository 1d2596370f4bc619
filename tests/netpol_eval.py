"""A small, independent NetworkPolicy ingress evaluator for tests.

Written from the Kubernetes NetworkPolicy reference, not from `lbipam.policy.build`, so that
tests can check what a generated policy lets through rather than how it is spelled.

Where the reference leaves the behaviour to the network plugin, this evaluator picks:
- `ipBlock` also matches in-cluster pods by their pod IP (as Calico and Cilium do);
- traffic from outside the cluster never matches `namespaceSelector` or `podSelector` peers.
Malformed policies raise ValueError instead of guessing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ContainerPort:
    name: str
    number: int
    protocol: str = "TCP"


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ip: str = "10.244.0.10"
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    ports: Sequence[ContainerPort] = ()


@dataclass(frozen=True)
class External:
    ip: str


Source = Pod | External


def is_allowed(
    policies: Iterable[Mapping[str, Any]],
    destination: Pod,
    source: Source,
    port: int,
    protocol: str = "TCP",
) -> bool:
    """Whether `source` may open `port`/`protocol` on `destination` under `policies`."""
    isolating = [p for p in policies if _isolates_ingress(p, destination)]
    if not isolating:
        return True
    return any(
        _rule_admits(rule, policy["metadata"]["namespace"], destination, source, port, protocol)
        for policy in isolating
        for rule in policy["spec"].get("ingress") or []
    )


def _isolates_ingress(policy: Mapping[str, Any], pod: Pod) -> bool:
    spec = policy["spec"]
    if policy["metadata"]["namespace"] != pod.namespace:
        return False
    types = spec.get("policyTypes") or (
        ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]
    )
    return "Ingress" in types and selects(spec["podSelector"], pod.labels)


def _rule_admits(
    rule: Mapping[str, Any],
    policy_namespace: str,
    destination: Pod,
    source: Source,
    port: int,
    protocol: str,
) -> bool:
    # An absent or empty list does not restrict: every peer, every port.
    peers = rule.get("from") or []
    ports = rule.get("ports") or []
    peer_ok = not peers or any(_peer_matches(p, policy_namespace, source) for p in peers)
    port_ok = not ports or any(_port_matches(p, destination, port, protocol) for p in ports)
    return peer_ok and port_ok


def _peer_matches(peer: Mapping[str, Any], policy_namespace: str, source: Source) -> bool:
    if "ipBlock" in peer:
        if "namespaceSelector" in peer or "podSelector" in peer:
            raise ValueError(f"ipBlock cannot be combined with selectors: {peer}")
        return _in_block(peer["ipBlock"], ipaddress.ip_address(source.ip))
    if "namespaceSelector" not in peer and "podSelector" not in peer:
        raise ValueError(f"peer selects nothing: {peer}")
    if isinstance(source, External):
        return False
    if "namespaceSelector" in peer:
        namespace_ok = selects(peer["namespaceSelector"], source.namespace_labels)
    else:
        namespace_ok = source.namespace == policy_namespace
    return namespace_ok and selects(peer.get("podSelector", {}), source.labels)


def _in_block(
    block: Mapping[str, Any], address: ipaddress.IPv4Address | ipaddress.IPv6Address
) -> bool:
    cidr = ipaddress.ip_network(block["cidr"])  # strict: the API server rejects host bits here
    excepted = [ipaddress.ip_network(e) for e in block.get("except", [])]
    if any(e.network_address not in cidr or e.broadcast_address not in cidr for e in excepted):
        raise ValueError(f"except entries must lie inside {cidr}: {block}")
    return address in cidr and not any(address in e for e in excepted)


def _port_matches(entry: Mapping[str, Any], destination: Pod, port: int, protocol: str) -> bool:
    if entry.get("protocol", "TCP") != protocol:
        return False
    wanted = entry.get("port")
    if wanted is None:
        return True
    if isinstance(wanted, str):
        if "endPort" in entry:
            raise ValueError(f"endPort needs a numeric port: {entry}")
        # A named port means the destination pod's container port of that name and protocol.
        return any(
            cp.name == wanted and cp.protocol == protocol and cp.number == port
            for cp in destination.ports
        )
    end = entry.get("endPort", wanted)
    if end < wanted:
        raise ValueError(f"endPort below port: {entry}")
    return bool(wanted <= port <= end)


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics: every requirement holds; `{}` selects everything."""
    unknown = set(selector) - {"matchLabels", "matchExpressions"}
    if unknown:
        raise ValueError(f"unknown selector fields {sorted(unknown)}")
    match_labels: Mapping[str, str] = selector.get("matchLabels") or {}
    if any(labels.get(k) != v for k, v in match_labels.items()):
        return False
    return all(_expression_holds(e, labels) for e in selector.get("matchExpressions") or [])


def _expression_holds(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, operator = expression["key"], expression["operator"]
    values: list[str] = expression.get("values") or []
    if operator in ("In", "NotIn") and not values:
        raise ValueError(f"{operator} needs values: {expression}")
    if operator in ("Exists", "DoesNotExist") and values:
        raise ValueError(f"{operator} takes no values: {expression}")
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    raise ValueError(f"unknown operator {operator!r}")

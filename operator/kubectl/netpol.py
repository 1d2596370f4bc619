"""A NetworkPolicy in plain words: which pods it isolates, and what it still lets in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _selector(selector: Mapping[str, Any] | None) -> str:
    labels = (selector or {}).get("matchLabels") or {}
    expressions = (selector or {}).get("matchExpressions") or []
    parts = [f"{k}={v}" for k, v in sorted(labels.items())]
    parts += [
        f"{e.get('key')} {e.get('operator')} {e.get('values') or ''}".strip() for e in expressions
    ]
    return ", ".join(parts)


def _peer(peer: Mapping[str, Any]) -> str:
    block = peer.get("ipBlock")
    if block:
        excepted = block.get("except") or []
        return str(block["cidr"]) + (f" (except {', '.join(excepted)})" if excepted else "")
    namespaces, pods = peer.get("namespaceSelector"), peer.get("podSelector")
    where = (
        "any namespace"
        if namespaces == {}
        else f"namespaces {_selector(namespaces)}"
        if namespaces
        else "its namespace"
    )
    who = f"pods {_selector(pods)}" if pods else "any pod"
    return f"{who} in {where}"


def _ports(ports: list[Mapping[str, Any]] | None) -> str:
    if not ports:
        return "every port"
    return ", ".join(f"{p.get('protocol') or 'TCP'}/{p.get('port', '*')}" for p in ports)


def describe_policy(policy: Mapping[str, Any]) -> list[str]:
    """One sentence for the pods it selects, one per ingress rule."""
    spec = policy.get("spec") or {}
    pods = _selector(spec.get("podSelector")) or "every pod"
    sentences = [
        f"isolates pods {pods} in {policy['metadata']['namespace']} for ingress: only what "
        "the rules below admit reaches them, on any port"
    ]
    for rule in spec.get("ingress") or []:
        peers = [_peer(p) for p in rule.get("from") or []] or ["anywhere"]
        sentences.append(f"admits {_ports(rule.get('ports'))} from {'; '.join(peers)}")
    return sentences

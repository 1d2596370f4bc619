"""What converting one object gives: the IPPool, and what it could not carry."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lbipam.api import POOL_API_VERSION

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set on every Namespace since 1.21


@dataclass(frozen=True)
class Converted:
    """One source object: the IPPool it becomes (if any), what is lost, what changed form."""

    source: str  # "metallb.io/v1beta1 IPAddressPool metallb-system/public"
    pool: dict[str, Any] | None
    lost: tuple[str, ...] = ()  # what the IPPool cannot express: `--check` fails
    notes: tuple[str, ...] = ()  # same meaning, other words: for the reader only


@dataclass(frozen=True)
class Source:
    """One other controller's kinds: its pool, the versions known, what only announces."""

    pool_kind: str
    versions: tuple[str, ...]
    announcers: Mapping[str, str]  # kind: what it does
    pair: str  # what to do instead, since lbipam does not announce

    def convert(
        self, objects: Sequence[Mapping[str, Any]], pool: Callable[[Mapping[str, Any]], Converted]
    ) -> list[Converted]:
        """Each object's conversion, in order: pools by `pool`, the others named."""
        results = []
        for obj in objects:
            kind = str(obj.get("kind"))
            version = str(obj.get("apiVersion", "")).partition("/")[2]
            if kind in self.announcers:
                lost = f"not converted: {self.announcers[kind]}; {self.pair}"
                results.append(Converted(describe(obj), None, (lost,)))
            elif kind != self.pool_kind:
                results.append(Converted(describe(obj), None, notes=("skipped: not a pool",)))
            elif version not in self.versions:
                lost = f"not converted: version {version} is not known to this converter"
                results.append(Converted(describe(obj), None, (lost,)))
            else:
                results.append(pool(obj))
        return results


def unknown_fields(spec: Mapping[str, Any], known: set[str], where: str = "spec") -> list[str]:
    return [f"{where}.{name}: not known to this converter" for name in sorted(set(spec) - known)]


def describe(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj.get('apiVersion', '?')} {obj.get('kind', '?')} {where}{meta.get('name', '?')}"


def converted_pool(
    obj: Mapping[str, Any], spec: dict[str, Any], lost: list[str], notes: list[str]
) -> Converted:
    """The IPPool of the same name as the pool `obj`, with `spec`."""
    pool = {
        "apiVersion": POOL_API_VERSION,
        "kind": "IPPool",
        "metadata": {"name": obj["metadata"]["name"]},
        "spec": spec,
    }
    return Converted(describe(obj), pool, tuple(lost), tuple(notes))


def cidr(text: str) -> str:
    """A CIDR as the IPPool CRD accepts it: host bits cleared, as both peers read it."""
    return str(ipaddress.ip_network(text.strip(), strict=False))


def same_network(text: str, written: str) -> bool:
    """Whether `text` already was the CIDR `written` (spelling aside), host bits clear."""
    try:
        return str(ipaddress.ip_network(text.strip())) == written
    except ValueError:
        return False


def label_selector(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a Kubernetes LabelSelector an IPPool selector has (all of them)."""
    kept: dict[str, Any] = {}
    if raw.get("matchLabels"):
        kept["matchLabels"] = dict(raw["matchLabels"])
    if raw.get("matchExpressions"):
        kept["matchExpressions"] = [dict(e) for e in raw["matchExpressions"]]
    return kept


def namespaces_selector(names: list[str]) -> dict[str, Any]:
    """Namespaces by name, as a namespaceSelector."""
    return {
        "matchExpressions": [
            {"key": NAMESPACE_NAME_LABEL, "operator": "In", "values": sorted(set(names))}
        ]
    }

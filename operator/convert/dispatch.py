"""Which converter each object goes to; lists unpacked; IPPool names that would collide."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from lbipam.convert import cilium, metallb
from lbipam.convert.model import Converted, describe

CONVERTERS: dict[str, Callable[[Sequence[Mapping[str, Any]]], list[Converted]]] = {
    metallb.GROUP: metallb.convert,
    cilium.GROUP: cilium.convert,
}


def convert(objects: Iterable[Mapping[str, Any]]) -> list[Converted]:
    """Every object's conversion, in input order (`kind: List` and `*List` items one by one)."""
    flat = list(_unpacked(objects))
    results: list[Converted | None] = [None] * len(flat)
    for group, converter in CONVERTERS.items():
        mine = [i for i, obj in enumerate(flat) if _group(obj) == group]
        for index, result in zip(mine, converter([flat[i] for i in mine]), strict=True):
            results[index] = result
    done = [
        result or Converted(describe(obj), None, notes=("skipped: not MetalLB's or Cilium's",))
        for obj, result in zip(flat, results, strict=True)
    ]
    return _unique_names(done)


def _unpacked(objects: Iterable[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    for obj in objects:
        if str(obj.get("kind", "")).endswith("List") and isinstance(obj.get("items"), list):
            yield from _unpacked(obj["items"])
        else:
            yield obj


def _group(obj: Mapping[str, Any]) -> str:
    return str(obj.get("apiVersion", "")).partition("/")[0]


def _unique_names(results: list[Converted]) -> list[Converted]:
    """A second pool of a name already taken is lost: IPPools are one cluster-wide namespace."""
    taken: dict[str, str] = {}
    kept = []
    for result in results:
        name = result.pool["metadata"]["name"] if result.pool else None
        if name is not None and name in taken:
            why = f"IPPool name {name} is taken by {taken[name]}; rename one of them"
            result = replace(result, pool=None, lost=(*result.lost, why))
        elif name is not None:
            taken[name] = result.source
        kept.append(result)
    return kept

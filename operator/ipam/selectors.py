"""Kubernetes label selectors (matchLabels + matchExpressions), evaluated on plain mappings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass(frozen=True)
class Requirement:
    """One matchExpressions entry."""

    key: str
    operator: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return labels.get(self.key) in self.values
        if self.operator == "NotIn":
            # As in Kubernetes: a missing label is "not in" any set.
            return labels.get(self.key) not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels


@dataclass(frozen=True)
class Selector:
    """A label selector; the empty selector matches everything."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(key) == value for key, value in self.match_labels) and all(
            requirement.matches(labels) for requirement in self.match_expressions
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Selector:
        """Parse the Kubernetes shape; ValueError names what is malformed."""
        if not isinstance(data, Mapping):
            raise ValueError("selector: must be an object with matchLabels and/or matchExpressions")
        unknown = sorted(set(data) - {"matchLabels", "matchExpressions"})
        if unknown:
            raise ValueError(
                f"selector: unknown field {unknown[0]!r}; only matchLabels and matchExpressions"
            )
        labels, expressions = data.get("matchLabels"), data.get("matchExpressions")
        return cls(
            match_labels=_parse_match_labels({} if labels is None else labels),
            match_expressions=tuple(
                _parse_requirement(index, item)
                for index, item in enumerate(_as_list([] if expressions is None else expressions))
            ),
        )


def _as_list(value: object) -> list[object]:
    if not isinstance(value, list | tuple):
        raise ValueError("selector.matchExpressions: must be a list")
    return list(value)


def _parse_match_labels(value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping):
        raise ValueError("selector.matchLabels: must be a map of label keys to values")
    pairs: list[tuple[str, str]] = []
    for key, label_value in value.items():
        if not isinstance(key, str) or not isinstance(label_value, str):
            raise ValueError(
                f"selector.matchLabels[{key!r}]: keys and values must be strings "
                f"(quote values such as {label_value!r})"
            )
        pairs.append((key, label_value))
    return tuple(sorted(pairs))


def _parse_requirement(index: int, item: object) -> Requirement:
    where = f"selector.matchExpressions[{index}]"
    if not isinstance(item, Mapping):
        raise ValueError(f"{where}: must be an object with key, operator and values")
    key, operator, values = item.get("key"), item.get("operator"), item.get("values")
    values = [] if values is None else values
    if not isinstance(key, str) or not key:
        raise ValueError(f"{where}: key must be a non-empty string")
    if operator not in OPERATORS:
        raise ValueError(f"{where}: operator {operator!r} is not one of {', '.join(OPERATORS)}")
    if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
        raise ValueError(f"{where}: values must be a list of strings")
    if operator in ("In", "NotIn") and not values:
        raise ValueError(f"{where}: operator {operator} needs at least one value")
    if operator in ("Exists", "DoesNotExist") and values:
        raise ValueError(f"{where}: operator {operator} takes no values; remove them")
    return Requirement(key=key, operator=str(operator), values=frozenset(values))

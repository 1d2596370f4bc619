"""Who may share an address: one sharing key, no port in common and, across namespaces, consent
on both sides (lbipam.io/sharing-cross-namespace); and the index of holders by sharing key."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Protocol, TypeVar

from .requests import Port, ServiceKey

# In a list of namespaces to share with: every namespace.
ANYONE = "*"
_ANNOTATION = "lbipam.io/sharing-cross-namespace"
_Index = TypeVar("_Index", bound=Hashable)


class Sharer(Protocol):
    """What sharing looks at of a Service."""

    @property
    def key(self) -> ServiceKey: ...

    @property
    def sharing_key(self) -> str | None: ...

    @property
    def share_with(self) -> frozenset[str]: ...

    @property
    def ports(self) -> frozenset[Port]: ...


def admits(share_with: frozenset[str], namespace: str) -> bool:
    """Whether a Service sharing with ``share_with`` consents to one of ``namespace``."""
    return ANYONE in share_with or namespace in share_with


def consenting(a: Sharer, b: Sharer) -> bool:
    """One sharing key, and one namespace or each consenting to the other's."""
    if a.sharing_key is None or a.sharing_key != b.sharing_key:
        return False
    mine, theirs = a.key.namespace, b.key.namespace
    return mine == theirs or (admits(a.share_with, theirs) and admits(b.share_with, mine))


def may_share(a: Sharer, b: Sharer) -> bool:
    """Whether the two may hold one address: consenting, and no port in common."""
    return consenting(a, b) and not a.ports & b.ports


def missing_consent(a: Sharer, b: Sharer) -> str | None:
    """Why two Services of one sharing key but not of one namespace may not share; None when
    they are not such a pair or both consent."""
    if a.sharing_key is None or a.sharing_key != b.sharing_key:
        return None
    if a.key.namespace == b.key.namespace:
        return None
    refusing = [
        f'Service {one.key} does not list namespace "{other.key.namespace}"'
        for one, other in ((a, b), (b, a))
        if not admits(one.share_with, other.key.namespace)
    ]
    if not refusing:
        return None
    return (
        f'sharing key "{a.sharing_key}" spans namespaces only where both sides consent: '
        f"{' and '.join(refusing)} in {_ANNOTATION}"
    )


class GroupBook:
    """The holders under each sharing key: per namespace, and per key those consenting to some
    other namespace (only they may share across one)."""

    def __init__(self) -> None:
        self._local: dict[tuple[str, str], set[ServiceKey]] = {}
        self._crossing: dict[str, set[ServiceKey]] = {}

    def __len__(self) -> int:
        """Entries: one per namespace and key in use, one per key some crossing sharer uses."""
        return len(self._local) + len(self._crossing)

    def add(self, sharer: Sharer) -> None:
        if sharer.sharing_key is None:
            return
        self._local.setdefault((sharer.key.namespace, sharer.sharing_key), set()).add(sharer.key)
        if sharer.share_with:
            self._crossing.setdefault(sharer.sharing_key, set()).add(sharer.key)

    def discard(self, sharer: Sharer) -> None:
        if sharer.sharing_key is None:
            return
        _drop(self._local, (sharer.key.namespace, sharer.sharing_key), sharer.key)
        if sharer.share_with:
            _drop(self._crossing, sharer.sharing_key, sharer.key)

    def candidates(self, sharer: Sharer) -> set[ServiceKey]:
        """The holders that may consent to share with ``sharer`` (itself too, if it holds):
        its namespace's under its key and, when it consents to others, those of other
        namespaces that consent to some. Those of many namespaces using one key apart are
        never looked at."""
        if sharer.sharing_key is None:
            return set()
        found = set(self._local.get((sharer.key.namespace, sharer.sharing_key), ()))
        if sharer.share_with:
            found |= self._crossing.get(sharer.sharing_key, set())
        return found

    def clear(self) -> None:
        self._local.clear()
        self._crossing.clear()

    def check(self, holders: Mapping[ServiceKey, Sharer]) -> None:
        expected = GroupBook()
        for holder in holders.values():
            expected.add(holder)
        assert expected._local == self._local, "the sharing groups are out of step"
        assert expected._crossing == self._crossing, "the crossing sharers are out of step"


def _drop(index: dict[_Index, set[ServiceKey]], at: _Index, key: ServiceKey) -> None:
    """Forget ``key`` under ``at``; an index never keeps an empty set."""
    keys = index[at]
    keys.discard(key)
    if not keys:
        del index[at]

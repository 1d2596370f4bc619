"""The latest view of every Service the operator handles (or did): written by one owner."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from lbipam.ipam.requests import ServiceKey
from lbipam.objects import ServiceView


class ServiceLookup(Protocol):
    """Read-only access, for controllers that follow Services but do not own them."""

    def get(self, key: ServiceKey) -> ServiceView | None: ...


class ServiceViews:
    """Views by key; only the Service controller writes here."""

    def __init__(self) -> None:
        self._views: dict[ServiceKey, ServiceView] = {}

    def get(self, key: ServiceKey) -> ServiceView | None:
        return self._views.get(key)

    def known(self, key: ServiceKey) -> ServiceKey:
        """The equal key the views hold already, else `key`: one key object per Service."""
        view = self._views.get(key)
        return key if view is None else view.key

    def __contains__(self, key: ServiceKey) -> bool:
        return key in self._views

    def __iter__(self) -> Iterator[ServiceKey]:
        return iter(self._views)

    def __len__(self) -> int:
        return len(self._views)

    def put(self, view: ServiceView) -> None:
        self._views[view.key] = view

    def remove(self, key: ServiceKey) -> None:
        self._views.pop(key, None)

    def snapshot(self) -> dict[ServiceKey, ServiceView]:
        return dict(self._views)

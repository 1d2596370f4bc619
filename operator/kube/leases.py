"""Leases (coordination.k8s.io/v1) in one namespace, as plain dicts."""

from __future__ import annotations

from typing import Any

from lbipam.kube.client import Api


class Leases:
    """Reads and writes of Leases; errors raise `ApiError` (404 absent, 409 stale)."""

    def __init__(self, api: Api, namespace: str) -> None:
        self.api = api
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"

    async def read(self, name: str) -> dict[str, Any]:
        lease: dict[str, Any] = await self.api.request("GET", f"{self.path}/{name}")
        return lease

    async def create(self, body: dict[str, Any]) -> None:
        await self.api.request("POST", self.path, body)

    async def replace(self, name: str, body: dict[str, Any]) -> None:
        """A compare-and-swap when `body` carries the resourceVersion read."""
        await self.api.request("PUT", f"{self.path}/{name}", body)

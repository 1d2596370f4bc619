"""Reading the cluster for the plugin: lists and gets through the operator's own client, never a
write (validate's server-side dry run is the API server's, and stores nothing)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from lbipam.api import CLAIM_MANAGER_LABEL, COMPONENT, GROUP, POOLS, VERSION
from lbipam.kube.client import Api
from lbipam.kube.errors import ApiError

POOLS_PATH = f"/apis/{GROUP}/{VERSION}/{POOLS}"
# The reportingComponent of lbipam's Events (kube/events.py).
EVENT_SOURCE = f"reportingComponent={GROUP}/{COMPONENT}"
Body = dict[str, Any]


@dataclass(frozen=True)
class Snapshot:
    """What every report starts from: pools, Services, namespaces' labels, ServiceCIDRs."""

    pools: list[Body]
    services: list[Body]
    namespaces: Mapping[str, Mapping[str, str]]
    service_cidrs: Mapping[str, tuple[str, ...]]


class Cluster:
    """Reads through `Api`; a kind the cluster does not serve reads as empty."""

    def __init__(self, api: Api) -> None:
        self.api = api

    async def _items(self, path: str, params: Mapping[str, str] | None = None) -> list[Body]:
        try:
            listed = await self.api.request("GET", path, params=params)
        except ApiError as error:
            if error.status == 404:
                return []
            raise
        return list(listed.get("items") or [])

    async def _get(self, path: str) -> Body | None:
        try:
            found: Body = await self.api.request("GET", path)
        except ApiError as error:
            if error.status == 404:
                return None
            raise
        return found

    async def snapshot(self) -> Snapshot:
        pools, services, namespaces, cidrs = await asyncio.gather(
            self._items(POOLS_PATH),
            self._items("/api/v1/services"),
            self._items("/api/v1/namespaces"),
            self._items("/apis/networking.k8s.io/v1/servicecidrs"),
        )
        return Snapshot(
            pools=sorted(pools, key=lambda p: str(p["metadata"]["name"])),
            services=sorted(
                services, key=lambda s: (s["metadata"]["namespace"], s["metadata"]["name"])
            ),
            namespaces={
                n["metadata"]["name"]: dict(n["metadata"].get("labels") or {}) for n in namespaces
            },
            service_cidrs={
                c["metadata"]["name"]: tuple((c.get("spec") or {}).get("cidrs") or ())
                for c in cidrs
            },
        )

    async def service(self, namespace: str, name: str) -> Body | None:
        return await self._get(f"/api/v1/namespaces/{namespace}/services/{name}")

    async def network_policy(self, namespace: str, name: str) -> Body | None:
        return await self._get(
            f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/{name}"
        )

    async def claim(self, address: str) -> Body | None:
        """The IPAddress object named by the address (IPv6 in its canonical form)."""
        return await self._get(f"/apis/networking.k8s.io/v1/ipaddresses/{quote(address, safe='')}")

    async def our_claims(self) -> list[Body]:
        """lbipam's IPAddress claims (by label); holds after release are among them."""
        selector = {"labelSelector": "=".join(CLAIM_MANAGER_LABEL)}
        return await self._items("/apis/networking.k8s.io/v1/ipaddresses", selector)

    async def nodes(self) -> list[Body]:
        return await self._items("/api/v1/nodes")

    async def events_of(self, namespace: str, name: str, uid: str | None = None) -> list[Body]:
        """Events about one object (any component's), oldest first."""
        selector = f"involvedObject.name={name}"
        if uid:
            selector += f",involvedObject.uid={uid}"
        events = await self._items(
            f"/api/v1/namespaces/{namespace}/events", {"fieldSelector": selector}
        )
        return sorted(events, key=event_time)

    async def events_about(self, address: str) -> list[Body]:
        """lbipam's Events, in every namespace, whose message names the address; oldest first."""
        events = await self._items("/api/v1/events", {"fieldSelector": EVENT_SOURCE})
        wanted = ipaddress.ip_address(address)
        return sorted(
            (e for e in events if wanted in addresses_in(e.get("message") or "")), key=event_time
        )

    async def dry_run_pool(self, body: Body) -> None:
        """Has the API server check a pool as `kubectl apply` would, storing nothing."""
        params = {"dryRun": "All", "fieldValidation": "Strict"}
        name = body["metadata"]["name"]
        existing = await self._get(f"{POOLS_PATH}/{name}")
        if existing is None:
            await self.api.request("POST", POOLS_PATH, body, params=params)
            return
        update = {
            **body,
            "metadata": {
                **body["metadata"],
                "resourceVersion": existing["metadata"]["resourceVersion"],
            },
        }
        await self.api.request("PUT", f"{POOLS_PATH}/{name}", update, params=params)


def api_message(error: ApiError) -> str:
    try:
        return str(json.loads(error.body)["message"])
    except (ValueError, KeyError, TypeError):
        return error.body or f"HTTP {error.status}"


def event_time(event: Mapping[str, Any]) -> tuple[str, int]:
    """When an Event last happened. Core Events carry whole seconds, so Events of one second
    are ordered by resourceVersion, which etcd hands out in write order."""
    meta = event.get("metadata") or {}
    stamp = event.get("lastTimestamp") or event.get("eventTime") or meta.get("creationTimestamp")
    version = str(meta.get("resourceVersion") or "")
    return str(stamp or ""), int(version) if version.isdigit() else 0


_ADDRESS_LIKE = re.compile(r"[0-9A-Fa-f:.]*[:.][0-9A-Fa-f:.]*")


def addresses_in(text: str) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The IP addresses a message names (192.168.10.1 is not found in 192.168.10.100)."""
    found = set()
    for token in _ADDRESS_LIKE.findall(text):
        try:
            found.add(ipaddress.ip_address(token.strip(".:")))
        except ValueError:
            continue
    return found

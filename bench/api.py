"""A bare aiohttp client for the API server: the few calls the benchmark makes, nothing else.

No generated client, no models: raw JSON over one connection pool, so the floor measures the
API server and not client overhead.
"""

from __future__ import annotations

import datetime
import json
import ssl
from dataclasses import dataclass
from typing import Any

import aiohttp

from lbipam.ipam.requests import ServiceKey
from lbipam.kube.events import event_manifest
from lbipam.objects import claim_manifest

APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
CONDITION_TYPE = "lbipam.io/AddressAllocated"
POOLS = "/apis/lbipam.io/v1alpha1/ippools"
IP_ADDRESSES = "/apis/networking.k8s.io/v1/ipaddresses"


@dataclass(frozen=True)
class Credentials:
    """Where the API server is and the admin's client certificate (files of the test PKI).

    With a `token` (a ServiceAccount's), requests carry it instead of the certificate: the API
    server would take the certificate first.
    """

    server: str
    ca: str
    cert: str
    key: str
    token: str = ""

    def args(self) -> list[str]:
        return [self.server, self.ca, self.cert, self.key]

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca)
        if not self.token:
            context.load_cert_chain(self.cert, self.key)
        return context

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


class ApiError(Exception):
    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:300]}")
        self.status = status


def service_manifest(name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """A LoadBalancer Service as the integration tests make one, without node ports."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": name},
            "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
            "allocateLoadBalancerNodePorts": False,
        },
    }


def allocated_message(ip: str, pool: str) -> str:
    return f"allocated {ip} from IPPool {pool}"


def status_apply(namespace: str, name: str, ip: str, pool: str) -> dict[str, Any]:
    """The body of the operator's status write (`KubeGateway.apply_service_status` in
    lbipam.kube.gateway)."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "status": {
            "loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]},
            "conditions": [
                {
                    "type": CONDITION_TYPE,
                    "status": "True",
                    "reason": "Allocated",
                    "message": allocated_message(ip, pool),
                    "lastTransitionTime": stamp,
                    "observedGeneration": 1,
                }
            ],
        },
    }


def ingress_ips(service: dict[str, Any]) -> list[str]:
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [entry["ip"] for entry in ingress if isinstance(entry, dict) and entry.get("ip")]


class Api:
    """One aiohttp session with at most `connections` requests in flight."""

    def __init__(self, credentials: Credentials, connections: int = 100) -> None:
        self.credentials = credentials
        self.connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Api:
        connector = aiohttp.TCPConnector(limit=self.connections, ssl=self.credentials.ssl_context())
        self._session = aiohttp.ClientSession(
            base_url=self.credentials.server,
            connector=connector,
            headers=self.credentials.headers(),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use Api as an async context manager"
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
        ok: tuple[int, ...] = (),
    ) -> Any:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if body is not None else {}
        async with self.session.request(
            method, path, data=data, headers=headers, params=params
        ) as response:
            text = await response.text()
            if response.status >= 400 and response.status not in ok:
                raise ApiError(method, path, response.status, text)
            return json.loads(text) if text and response.status < 400 else None

    async def create_namespace(self, name: str) -> None:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        await self.request("POST", "/api/v1/namespaces", body, ok=(409,))

    async def create_service(self, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = await self.request(
            "POST", f"/api/v1/namespaces/{namespace}/services", manifest
        )
        return created

    async def apply_service_status(self, namespace: str, name: str, body: Any) -> None:
        await self.request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/services/{name}/status",
            body,
            content_type=APPLY,
            params={"fieldManager": "lbipam", "force": "true"},
        )

    async def create_claim(self, namespace: str, name: str, ip: str) -> None:
        """The IPAddress the operator creates before it shows `ip` in the Service's status."""
        await self.request("POST", IP_ADDRESSES, claim_manifest(ip, ServiceKey(namespace, name)))

    async def post_allocated_event(self, service: dict[str, Any], ip: str, pool: str) -> None:
        """The AddressAllocated Event the operator posts once the status shows `ip`."""
        meta = service["metadata"]
        involved = {
            "apiVersion": "v1",
            "namespace": meta["namespace"],
            "name": meta["name"],
            "uid": meta["uid"],
        }
        message = allocated_message(ip, pool)
        body = event_manifest(involved, "Service", "AddressAllocated", message, False, "bench")
        await self.request("POST", f"/api/v1/namespaces/{meta['namespace']}/events", body)

    async def list_services(self, namespace: str) -> dict[str, Any]:
        listed: dict[str, Any] = await self.request(
            "GET", f"/api/v1/namespaces/{namespace}/services"
        )
        return listed

    async def create_pool(self, name: str, addresses: list[str]) -> None:
        body = {
            "apiVersion": "lbipam.io/v1alpha1",
            "kind": "IPPool",
            "metadata": {"name": name},
            "spec": {"addresses": addresses},
        }
        await self.request("POST", POOLS, body)

    async def get_pool(self, name: str) -> dict[str, Any]:
        pool: dict[str, Any] = await self.request("GET", f"{POOLS}/{name}")
        return pool

    async def patch_pool(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        pool: dict[str, Any] = await self.request(
            "PATCH", f"{POOLS}/{name}", {"spec": spec}, content_type=MERGE
        )
        return pool

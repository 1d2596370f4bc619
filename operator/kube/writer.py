"""What the controllers need from the cluster (`Writer`) and its implementation on the API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from kubernetes.aio import client

# The client loads each API module on first use, and CoreV1Api's is 6 MB of generated code:
# imported here, that pause falls in start-up instead of in the first term of leadership,
# where it held up Lease renewals for seconds.
from kubernetes.aio.client import CoreV1Api, CustomObjectsApi, NetworkingV1Api

from lbipam.api import CLAIM_MANAGER_LABEL, FIELD_MANAGER, GROUP, POOLS, VERSION
from lbipam.ha.term import Term
from lbipam.ipam.requests import ServiceKey
from lbipam.kube.errors import is_status, read_json
from lbipam.kube.events import EventPoster
from lbipam.objects import held_addresses

APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"


class Writer(Protocol):
    """Every read and write the controllers make; tests record them with a fake."""

    async def apply_service_status(
        self,
        key: ServiceKey,
        version: str | None,
        ingress: tuple[str, ...],
        condition: Mapping[str, Any] | None,
    ) -> None: ...

    async def service_gone(self, key: ServiceKey, error: BaseException) -> bool: ...

    async def list_services(self, page: int = 500) -> list[dict[str, Any]]: ...

    async def patch_pool(self, name: str, patch: Mapping[str, Any], *, status: bool) -> None: ...

    async def get_policy(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def put_policy(self, manifest: Mapping[str, Any], existing: bool) -> None: ...

    async def delete_policy(self, namespace: str, name: str, uid: str) -> None: ...

    async def create_claim(self, address: str, key: ServiceKey) -> dict[str, Any]: ...

    async def service_ingress(self, key: ServiceKey) -> tuple[str, ...] | None: ...

    async def read_claim(self, address: str) -> dict[str, Any] | None: ...

    async def delete_claim(self, address: str, uid: str) -> None: ...

    async def list_claims(self) -> list[dict[str, Any]]: ...

    def event(
        self,
        involved: Mapping[str, str],
        kind: str,
        reason: str,
        message: str,
        *,
        warning: bool = False,
    ) -> None: ...


def yaml_safe(text: str, limit: int = 1024) -> str:
    """Text an apply patch can carry, cut to `limit` characters.

    The client sends apply patches as ASCII JSON, where characters beyond U+FFFF become
    surrogate-pair escapes that the API server's YAML decoder refuses; a user's emoji echoed
    in a message must not keep the whole status from being written.
    """
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return "".join(c if ord(c) <= 0xFFFF else "\ufffd" for c in text)


class ApiWriter:
    """`Writer` on the API server; every write is fenced by the term of leadership."""

    def __init__(self, api: client.ApiClient, term: Term) -> None:
        self.term = term
        self.core = CoreV1Api(api)
        self.custom = CustomObjectsApi(api)
        self.networking = NetworkingV1Api(api)
        self.events = EventPoster(self.core, term)

    def event(
        self,
        involved: Mapping[str, str],
        kind: str,
        reason: str,
        message: str,
        *,
        warning: bool = False,
    ) -> None:
        self.events.post(involved, kind, reason, message, warning)

    async def apply_service_status(
        self,
        key: ServiceKey,
        version: str | None,
        ingress: tuple[str, ...],
        condition: Mapping[str, Any] | None,
    ) -> None:
        """Server-side apply of our fields in the Service status; fields we leave out are removed.

        Apply keeps conditions owned by other controllers, and omitting ours on release removes
        exactly what we wrote. `version` (the resourceVersion decided on) makes the write
        conditional: a decision made on an object that changed since — by a new leader while
        this replica was frozen, say — fails with 409 instead of overwriting. Raises 404 (or
        422, see `service_gone`) when the Service is gone.
        """
        self.term.check()
        status: dict[str, Any] = {}
        if ingress:
            status["loadBalancer"] = {"ingress": [{"ip": ip, "ipMode": "VIP"} for ip in ingress]}
        if condition is not None:
            status["conditions"] = [{**condition, "message": yaml_safe(condition["message"])}]
        body = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": key.name,
                "namespace": key.namespace,
                **({"resourceVersion": version} if version else {}),
            },
            "status": status,
        }
        response = await self.core.patch_namespaced_service_status_without_preload_content(
            key.name,
            key.namespace,
            body,
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type=APPLY,
        )
        await read_json(response)

    async def list_services(self, page: int = 500) -> list[dict[str, Any]]:
        """Every Service in the cluster, read in pages."""
        services: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            response = await self.core.list_service_for_all_namespaces_without_preload_content(
                limit=page, _continue=token
            )
            body = await read_json(response)
            services.extend(body.get("items") or [])
            token = (body.get("metadata") or {}).get("continue")
            if not token:
                return services

    async def service_gone(self, key: ServiceKey, error: BaseException) -> bool:
        """Whether a failed status write failed only because the Service was deleted.

        Apply on a missing Service tries to create it and fails validation (422), not 404.
        """
        if is_status(error, 404):
            return True
        if not is_status(error, 422):
            return False
        response = await self.core.read_namespaced_service_without_preload_content(
            key.name, key.namespace
        )
        response.release()
        return bool(response.status == 404)

    async def patch_pool(self, name: str, patch: Mapping[str, Any], *, status: bool) -> None:
        """JSON merge patch of an IPPool (custom resources take no strategic merge)."""
        self.term.check()
        method = (
            self.custom.patch_cluster_custom_object_status_without_preload_content
            if status
            else self.custom.patch_cluster_custom_object_without_preload_content
        )
        response = await method(GROUP, VERSION, POOLS, name, dict(patch), _content_type=MERGE)
        await read_json(response)

    async def get_policy(self, namespace: str, name: str) -> dict[str, Any] | None:
        response = await self.networking.read_namespaced_network_policy_without_preload_content(
            name, namespace
        )
        if response.status == 404:
            response.release()
            return None
        policy: dict[str, Any] = await read_json(response)
        return policy

    async def put_policy(self, manifest: Mapping[str, Any], existing: bool) -> None:
        self.term.check()
        namespace = manifest["metadata"]["namespace"]
        body: Any = dict(manifest)
        if existing:
            response = (
                await self.networking.replace_namespaced_network_policy_without_preload_content(
                    manifest["metadata"]["name"], namespace, body
                )
            )
        else:
            response = (
                await self.networking.create_namespaced_network_policy_without_preload_content(
                    namespace, body
                )
            )
        await read_json(response)

    async def delete_policy(self, namespace: str, name: str, uid: str) -> None:
        """Delete only the policy with this uid, so a foreign one of the same name survives."""
        self.term.check()
        options: Any = {"preconditions": {"uid": uid}}
        response = await self.networking.delete_namespaced_network_policy_without_preload_content(
            name, namespace, body=options
        )
        if response.status in (404, 409):
            response.release()
            return
        await read_json(response)

    async def create_claim(self, address: str, key: ServiceKey) -> dict[str, Any]:
        """Create the IPAddress named `address` for the Service; 409 when it exists already."""
        self.term.check()
        body: Any = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IPAddress",
            "metadata": {"name": address, "labels": dict([CLAIM_MANAGER_LABEL])},
            "spec": {
                "parentRef": {
                    "group": "",
                    "resource": "services",
                    "namespace": key.namespace,
                    "name": key.name,
                }
            },
        }
        response = await self.networking.create_ip_address_without_preload_content(body)
        created: dict[str, Any] = await read_json(response)
        return created

    async def service_ingress(self, key: ServiceKey) -> tuple[str, ...] | None:
        """The addresses the Service's status shows now; None when it is gone."""
        response = await self.core.read_namespaced_service_status_without_preload_content(
            key.name, key.namespace
        )
        if response.status == 404:
            response.release()
            return None
        return held_addresses(await read_json(response))

    async def read_claim(self, address: str) -> dict[str, Any] | None:
        response = await self.networking.read_ip_address_without_preload_content(address)
        if response.status == 404:
            response.release()
            return None
        claim: dict[str, Any] = await read_json(response)
        return claim

    async def delete_claim(self, address: str, uid: str) -> None:
        """Delete only the claim with this uid: one made since for someone else survives."""
        self.term.check()
        options: Any = {"preconditions": {"uid": uid}}
        response = await self.networking.delete_ip_address_without_preload_content(
            address, body=options
        )
        if response.status in (404, 409):
            response.release()
            return
        await read_json(response)

    async def list_claims(self) -> list[dict[str, Any]]:
        """Our IPAddresses (label selector), read in one list."""
        selector = "=".join(CLAIM_MANAGER_LABEL)
        response = await self.networking.list_ip_address_without_preload_content(
            label_selector=selector
        )
        body = await read_json(response)
        return list(body.get("items") or [])

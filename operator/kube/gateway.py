"""The gateway to the cluster: every read and write the controllers make (`Gateway`), and
its implementation on the API server (`KubeGateway`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from lbipam.api import CLAIM_MANAGER_LABEL, FIELD_MANAGER, GROUP, POOLS, VERSION
from lbipam.ha.term import Term
from lbipam.ipam.requests import ServiceKey
from lbipam.kube.client import APPLY_PATCH, JSON, MERGE_PATCH, METADATA, Api
from lbipam.kube.errors import is_status
from lbipam.kube.events import EventPoster
from lbipam.objects import claim_manifest, held_addresses

POLICIES = "/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies"
IP_ADDRESSES = "/apis/networking.k8s.io/v1/ipaddresses"
# Objects per list page: only one page of full bodies is alive at a time. A page of 500
# Services is ~5 MiB parsed, and the allocator keeps that high-water mark after each periodic
# sweep (a +10 MiB RSS step in the soak); 100 costs 50 requests per 5,000 objects, every 10 min.
LIST_PAGE = 100
T = TypeVar("T")


def _service(key: ServiceKey) -> str:
    return f"/api/v1/namespaces/{key.namespace}/services/{key.name}"


def _pool(name: str, status: bool) -> str:
    return f"/apis/{GROUP}/{VERSION}/{POOLS}/{name}" + ("/status" if status else "")


class Gateway(Protocol):
    """Every read and write the controllers make; tests record them with a fake."""

    async def apply_service_status(
        self,
        key: ServiceKey,
        version: str | None,
        ingress: tuple[str, ...],
        condition: Mapping[str, Any] | None,
    ) -> dict[str, Any]: ...

    async def service_gone(self, key: ServiceKey, error: BaseException) -> bool: ...

    async def list_services(self, keep: Callable[[dict[str, Any]], T]) -> list[T]: ...

    async def list_service_metadata(self, keep: Callable[[dict[str, Any]], T]) -> list[T]: ...

    async def patch_pool(self, name: str, patch: Mapping[str, Any], *, status: bool) -> None: ...

    async def get_policy(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def put_policy(self, manifest: Mapping[str, Any], existing: bool) -> None: ...

    async def delete_policy(self, namespace: str, name: str, uid: str) -> None: ...

    async def create_claim(
        self, address: str, key: ServiceKey, held_since: str = ""
    ) -> dict[str, Any]: ...

    async def service_ingress(self, key: ServiceKey) -> tuple[str, ...] | None: ...

    async def read_claim(self, address: str) -> dict[str, Any] | None: ...

    async def delete_claim(self, address: str, uid: str) -> None: ...

    async def list_claims(self, keep: Callable[[dict[str, Any]], T]) -> list[T]: ...

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

    The API server decodes apply patches as YAML, which refuses characters beyond U+FFFF
    as JSON's surrogate-pair escapes; a user's emoji echoed in a message must not keep the
    whole status from being written, whichever JSON encoder wrote the patch.
    """
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return "".join(c if ord(c) <= 0xFFFF else "\ufffd" for c in text)


class KubeGateway:
    """`Gateway` on the API server; every write is fenced by the term of leadership."""

    def __init__(self, api: Api, term: Term) -> None:
        self.term = term
        self.api = api
        self.events = EventPoster(api, term)

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
    ) -> dict[str, Any]:
        """Server-side apply of our fields in the Service status; fields we leave out are removed.
        Returns the Service as written.

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
        params = {"fieldManager": FIELD_MANAGER, "force": "true"}
        written: dict[str, Any] = await self.api.request(
            "PATCH", _service(key) + "/status", body, params=params, content_type=APPLY_PATCH
        )
        return written

    async def list_services(self, keep: Callable[[dict[str, Any]], T]) -> list[T]:
        """What `keep` makes of every Service in the cluster."""
        return await self._list("/api/v1/services", keep)

    async def list_service_metadata(self, keep: Callable[[dict[str, Any]], T]) -> list[T]:
        """What `keep` makes of every Service's metadata: the sweep needs no more, and a page
        of metadata is a fraction of a page of Services to allocate."""
        return await self._list("/api/v1/services", keep, accept=METADATA)

    async def list_nodes(self, keep: Callable[[dict[str, Any]], T]) -> list[T]:
        """What `keep` makes of every Node."""
        return await self._list("/api/v1/nodes", keep)

    async def _list(
        self, path: str, keep: Callable[[dict[str, Any]], T], accept: str = JSON, **params: str
    ) -> list[T]:
        """Read in pages, keeping only what `keep` makes of each object: the full bodies of
        20,000 Services at once would double the operator's peak memory."""
        kept: list[T] = []
        query = {"limit": str(LIST_PAGE), **params}
        while True:
            body = await self.api.request("GET", path, params=query, accept=accept)
            kept.extend(keep(item) for item in body.get("items") or [])
            token = (body.get("metadata") or {}).get("continue")
            if not token:
                return kept
            query["continue"] = token

    async def service_gone(self, key: ServiceKey, error: BaseException) -> bool:
        """Whether a failed status write failed only because the Service was deleted.

        Apply on a missing Service tries to create it and fails validation (422), not 404.
        """
        if is_status(error, 404):
            return True
        if not is_status(error, 422):
            return False
        try:
            await self.api.request("GET", _service(key))
        except Exception as reading:
            if is_status(reading, 404):
                return True
            raise
        return False

    async def patch_pool(self, name: str, patch: Mapping[str, Any], *, status: bool) -> None:
        """JSON merge patch of an IPPool (custom resources take no strategic merge)."""
        self.term.check()
        await self.api.request("PATCH", _pool(name, status), dict(patch), content_type=MERGE_PATCH)

    async def get_policy(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            policy: dict[str, Any] = await self.api.request(
                "GET", POLICIES.format(namespace=namespace) + f"/{name}"
            )
        except Exception as error:
            if is_status(error, 404):
                return None
            raise
        return policy

    async def put_policy(self, manifest: Mapping[str, Any], existing: bool) -> None:
        self.term.check()
        namespace = manifest["metadata"]["namespace"]
        path = POLICIES.format(namespace=namespace)
        if existing:
            await self.api.request("PUT", f"{path}/{manifest['metadata']['name']}", dict(manifest))
        else:
            await self.api.request("POST", path, dict(manifest))

    async def delete_policy(self, namespace: str, name: str, uid: str) -> None:
        """Delete only the policy with this uid, so a foreign one of the same name survives."""
        self.term.check()
        options = {"preconditions": {"uid": uid}}
        try:
            await self.api.request(
                "DELETE", POLICIES.format(namespace=namespace) + f"/{name}", options
            )
        except Exception as error:
            if not is_status(error, 404, 409):
                raise

    async def create_claim(
        self, address: str, key: ServiceKey, held_since: str = ""
    ) -> dict[str, Any]:
        """Create the IPAddress named `address` for the Service (a hold after release with
        `held_since`); 409 when it exists already."""
        self.term.check()
        body = claim_manifest(address, key, held_since)
        created: dict[str, Any] = await self.api.request("POST", IP_ADDRESSES, body)
        return created

    async def service_ingress(self, key: ServiceKey) -> tuple[str, ...] | None:
        """The addresses the Service's status shows now; None when it is gone."""
        try:
            return held_addresses(await self.api.request("GET", _service(key) + "/status"))
        except Exception as error:
            if is_status(error, 404):
                return None
            raise

    async def read_claim(self, address: str) -> dict[str, Any] | None:
        try:
            claim: dict[str, Any] = await self.api.request("GET", f"{IP_ADDRESSES}/{address}")
        except Exception as error:
            if is_status(error, 404):
                return None
            raise
        return claim

    async def delete_claim(self, address: str, uid: str) -> None:
        """Delete only the claim with this uid: one made since for someone else survives."""
        self.term.check()
        options = {"preconditions": {"uid": uid}}
        try:
            await self.api.request("DELETE", f"{IP_ADDRESSES}/{address}", options)
        except Exception as error:
            if not is_status(error, 404, 409):
                raise

    async def list_claims(self, keep: Callable[[dict[str, Any]], T]) -> list[T]:
        """What `keep` makes of each of our IPAddresses (by label)."""
        return await self._list(IP_ADDRESSES, keep, labelSelector="=".join(CLAIM_MANAGER_LABEL))

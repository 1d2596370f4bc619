"""The async Kubernetes client, set up once, and every write the operator makes."""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
from collections.abc import Mapping
from typing import Any

from kubernetes.aio import client, config

# The client loads each API module on first use, and CoreV1Api's is 6 MB of generated code:
# imported here, that pause falls in start-up instead of in the first term of leadership,
# where it held up Lease renewals for seconds.
from kubernetes.aio.client import CoreV1Api, CustomObjectsApi, NetworkingV1Api
from kubernetes.aio.client.exceptions import ApiException

from lbipam.ha.term import Term
from lbipam.ipam.requests import ServiceKey
from lbipam.objects import GROUP, POOLS, VERSION

FIELD_MANAGER = "lbipam"
COMPONENT = "lbipam"
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
log = logging.getLogger(__name__)


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _kubeconfig() -> str | None:
    path = (os.environ.get("KUBECONFIG") or "~/.kube/config").split(os.pathsep)[0]
    path = os.path.expanduser(path)
    return path if os.path.exists(path) else None


async def connect() -> client.ApiClient:
    """A client for $KUBECONFIG when set (or ~/.kube/config), else the in-cluster account."""
    kubeconfig = _kubeconfig()
    if kubeconfig is not None:
        await config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig
        )
    else:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    configuration = client.Configuration.get_default_copy()
    # With trust_env, aiohttp reads the proxy variables and ~/.netrc in a thread on every
    # request; the API server is reached directly (a kubeconfig proxy-url still applies).
    configuration.client_session_kwargs = {"trust_env": False}
    return client.ApiClient(configuration)


def yaml_safe(text: str, limit: int = 1024) -> str:
    """Text an apply patch can carry, cut to `limit` characters.

    The client sends apply patches as ASCII JSON, where characters beyond U+FFFF become
    surrogate-pair escapes that the API server's YAML decoder refuses; a user's emoji echoed
    in a message must not keep the whole status from being written.
    """
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return "".join(c if ord(c) <= 0xFFFF else "\ufffd" for c in text)


class Fenced(Exception):
    """A write was attempted after this replica stopped leading."""


def is_status(error: BaseException, *codes: int) -> bool:
    return isinstance(error, ApiException) and error.status in codes


class Kube:
    """Writers for Service status, IPPool status and finalizers, Events and NetworkPolicies."""

    def __init__(
        self, api: client.ApiClient, events_namespace: str, term: Term | None = None
    ) -> None:
        self.api = api
        self.term = term
        self.core = CoreV1Api(api)
        self.custom = CustomObjectsApi(api)
        self.networking = NetworkingV1Api(api)
        self.events_namespace = events_namespace
        self._background: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        """Let queued Events go out; the ApiClient belongs to the caller."""
        if self._background:
            await asyncio.wait(self._background, timeout=5)

    def _check_fence(self) -> None:
        if self.term is not None and not self.term.active():
            raise Fenced("this replica is no longer leading; nothing more is written")

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
        self._check_fence()
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
        await _check(response)

    async def list_services(self, page: int = 500) -> list[dict[str, Any]]:
        """Every Service in the cluster, read in pages."""
        services: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            response = await self.core.list_service_for_all_namespaces_without_preload_content(
                limit=page, _continue=token
            )
            body = await _check(response)
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
        self._check_fence()
        method = (
            self.custom.patch_cluster_custom_object_status_without_preload_content
            if status
            else self.custom.patch_cluster_custom_object_without_preload_content
        )
        response = await method(GROUP, VERSION, POOLS, name, dict(patch), _content_type=MERGE)
        await _check(response)

    def event(
        self,
        involved: Mapping[str, str],
        kind: str,
        reason: str,
        message: str,
        *,
        warning: bool = False,
    ) -> None:
        """Post a core Event in the background: an Event must never delay an allocation.

        `involved` has apiVersion, name, uid and, for namespaced objects, namespace.
        """
        if self.term is not None and not self.term.active():
            return
        task = asyncio.create_task(self._post_event(involved, kind, reason, message, warning))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _post_event(
        self, involved: Mapping[str, str], kind: str, reason: str, message: str, warning: bool
    ) -> None:
        # Cluster-scoped objects' Events live in "default", where `kubectl describe` looks.
        namespace = involved.get("namespace") or "default"
        stamp = now()
        # The generated client types bodies as its models; it sends plain dicts as they are.
        body: Any = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{involved['name']}.", "namespace": namespace},
            "involvedObject": {"kind": kind, **involved},
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT},
            "reportingComponent": f"{GROUP}/{COMPONENT}",
            "reportingInstance": os.environ.get("HOSTNAME", COMPONENT),
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            response = await self.core.create_namespaced_event_without_preload_content(
                namespace, body
            )
            await _check(response)
        except Exception as error:
            log.warning("could not post %s Event on %s: %s", reason, involved.get("name"), error)

    async def get_policy(self, namespace: str, name: str) -> dict[str, Any] | None:
        response = await self.networking.read_namespaced_network_policy_without_preload_content(
            name, namespace
        )
        if response.status == 404:
            response.release()
            return None
        policy: dict[str, Any] = await _check(response)
        return policy

    async def put_policy(self, manifest: Mapping[str, Any], existing: bool) -> None:
        self._check_fence()
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
        await _check(response)

    async def delete_policy(self, namespace: str, name: str, uid: str) -> None:
        """Delete only the policy with this uid, so a foreign one of the same name survives."""
        self._check_fence()
        options: Any = {"preconditions": {"uid": uid}}
        response = await self.networking.delete_namespaced_network_policy_without_preload_content(
            name, namespace, body=options
        )
        if response.status in (404, 409):
            response.release()
            return
        await _check(response)


async def _check(response: Any) -> Any:
    """Raise ApiException for an error response; return the decoded body otherwise."""
    data = await response.read()
    if response.status >= 400:
        raise ApiException(status=response.status, reason=response.reason, body=data.decode())
    return json.loads(data) if data else None

"""A recording stand-in for `lbipam.kube.gateway.Gateway`: what the controllers asked, in order.

Not a mock of the Kubernetes API: it keeps only what the controllers themselves asked for, so
table tests can say "this Service in → these writes and Events out".
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from lbipam.ipam.requests import ServiceKey
from lbipam.kube.errors import ApiError
from lbipam.objects import claim_manifest

T = TypeVar("T")


@dataclass
class Event:
    kind: str
    name: str
    reason: str
    message: str
    warning: bool


@dataclass
class RecordingGateway:
    statuses: list[tuple[ServiceKey, tuple[str, ...], Mapping[str, Any] | None]] = field(
        default_factory=list
    )
    pool_patches: list[tuple[str, Mapping[str, Any], bool]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    policies: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    policy_writes: list[tuple[str, str, str]] = field(default_factory=list)  # verb, ns, name
    services: list[dict[str, Any]] = field(default_factory=list)
    # Status codes the next status writes fail with, in order (409: the Service changed).
    status_failures: list[int] = field(default_factory=list)
    gone: set[ServiceKey] = field(default_factory=set)
    # IPAddress objects by name, as the API server would keep them: one per address.
    claims: dict[str, dict[str, Any]] = field(default_factory=dict)
    claim_writes: list[tuple[str, str]] = field(default_factory=list)  # verb, address
    claim_failures: list[int] = field(default_factory=list)  # as status_failures, for creates
    # Creates stored whose answer is lost (a deadline passed, a connection dropped), in order.
    claim_answers_lost: int = 0
    # What the cluster does between the moment a list of claims is taken and its answer.
    while_listing: Callable[[], Awaitable[None]] | None = None

    async def apply_service_status(
        self,
        key: ServiceKey,
        version: str | None,
        ingress: tuple[str, ...],
        condition: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        if self.status_failures:
            raise ApiError(self.status_failures.pop(0))
        self.statuses.append((key, ingress, condition))
        status: dict[str, Any] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in ingress]}}
        if condition is not None:
            status["conditions"] = [dict(condition)]
        return {"metadata": {"resourceVersion": f"written-{len(self.statuses)}"}, "status": status}

    async def service_gone(self, key: ServiceKey, error: BaseException) -> bool:
        return key in self.gone

    async def list_services(self, keep: Callable[[dict[str, Any]], T]) -> list[T]:
        return [keep(body) for body in self.services]

    async def list_service_metadata(self, keep: Callable[[dict[str, Any]], T]) -> list[T]:
        return [keep({"metadata": body["metadata"]}) for body in self.services]

    async def patch_pool(self, name: str, patch: Mapping[str, Any], *, status: bool) -> None:
        self.pool_patches.append((name, patch, status))

    async def get_policy(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.policies.get((namespace, name))

    async def put_policy(self, manifest: Mapping[str, Any], existing: bool) -> None:
        meta = manifest["metadata"]
        self.policy_writes.append(
            ("replace" if existing else "create", meta["namespace"], meta["name"])
        )
        stored = {
            **manifest,
            "metadata": {**meta, "uid": f"uid-{meta['name']}", "resourceVersion": "1"},
        }
        self.policies[(meta["namespace"], meta["name"])] = stored

    async def delete_policy(self, namespace: str, name: str, uid: str) -> None:
        self.policy_writes.append(("delete", namespace, name))
        self.policies.pop((namespace, name), None)

    def event(
        self,
        involved: Mapping[str, str],
        kind: str,
        reason: str,
        message: str,
        *,
        warning: bool = False,
    ) -> None:
        self.events.append(Event(kind, involved["name"], reason, message, warning))

    async def create_claim(
        self, address: str, key: ServiceKey, held_since: str = ""
    ) -> dict[str, Any]:
        if self.claim_failures:
            raise ApiError(self.claim_failures.pop(0))
        if address in self.claims:
            raise ApiError(409)
        self.claim_writes.append(("hold" if held_since else "create", address))
        self.claims[address] = claim(address, key, held_since=held_since)
        # Each object the API server makes has its own uid, also one made again.
        self.claims[address]["metadata"]["uid"] += f"-{len(self.claim_writes)}"
        if self.claim_answers_lost:
            self.claim_answers_lost -= 1
            raise TimeoutError
        return self.claims[address]

    async def read_claim(self, address: str) -> dict[str, Any] | None:
        return self.claims.get(address)

    async def delete_claim(self, address: str, uid: str) -> None:
        if self.claims.get(address, {}).get("metadata", {}).get("uid") == uid:
            self.claim_writes.append(("delete", address))
            del self.claims[address]

    async def list_claims(self, keep: Callable[[dict[str, Any]], T]) -> list[T]:
        listed = [keep(body) for body in self.claims.values()]
        if self.while_listing is not None:
            await self.while_listing()  # the list is taken; its answer is still on the way
        return listed

    async def service_ingress(self, key: ServiceKey) -> tuple[str, ...] | None:
        if key in self.gone:
            return None
        shown = [ingress for k, ingress, _ in self.statuses if k == key]
        return shown[-1] if shown else ()

    def service_event(self, key: ServiceKey, deleted: bool) -> None:
        """The cluster's side of a Service event: a deleted Service's status reads as gone."""
        if deleted:
            self.gone.add(key)
        else:
            self.gone.discard(key)

    def reasons(self) -> list[str]:
        return [event.reason for event in self.events]


def claim(
    address: str,
    key: ServiceKey,
    manager: str = "lbipam.io",
    age: float = 0.0,
    held_since: str = "",
) -> dict[str, Any]:
    """An IPAddress as the API server returns it: lbipam's claim, or another manager's,
    made `age` seconds ago; a hold after release since `held_since`, if given."""
    body = claim_manifest(address, key, held_since)
    made = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=age)
    body["metadata"] |= {
        "uid": f"uid-{address}-{key.name}",
        "creationTimestamp": made.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "labels": {"ipaddress.kubernetes.io/managed-by": manager},
    }
    return body

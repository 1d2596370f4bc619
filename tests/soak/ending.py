"""After the churn: the cluster settles, and every promise is read from the API server.

- the chaos model's oracle (`tests/faults/oracle.py`) finds nothing in the soak's namespaces;
- no standing Service lost an address on the way (the fault suite's watch);
- the IPAddress claims of the soak's Services are exactly the addresses they hold;
- deleted pools are gone, and so are their metric series on the leader.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import urllib3
from kubernetes import client

from lbipam.api import CLAIM_MANAGER_LABEL
from tests.faults import oracle
from tests.faults.checker import Monitor, _held, list_pools
from tests.operator_process import OperatorProcess
from tests.soak.churn import Population


@dataclass
class Ending:
    settle_seconds: float = 0.0
    violations: list[str] = field(default_factory=list)
    claims: int = 0
    held: int = 0
    services: int = 0


def _claims(api: client.ApiClient, tag: str) -> set[str]:
    """Our IPAddress claims on behalf of the soak's Services (terminating namespaces too)."""
    listing = client.NetworkingV1Api(api).list_ip_address(
        label_selector="=".join(CLAIM_MANAGER_LABEL)
    )
    return {
        claim.metadata.name
        for claim in listing.items
        if (claim.spec.parent_ref.namespace or "").startswith(f"{tag}-")
    }


def _cluster(api: client.ApiClient, population: Population) -> tuple[oracle.Cluster, set[str]]:
    core, networking = client.CoreV1Api(api), client.NetworkingV1Api(api)
    services: list[tuple[Any, Any]] = []
    policies: list[Any] = []
    labels: dict[str, Any] = {}
    for namespace in core.list_namespace(label_selector=f"soak={population.tag}").items:
        name = namespace.metadata.name
        labels[name] = namespace.metadata.labels or {}
        listing = api.sanitize_for_serialization(core.list_namespaced_service(name))
        services += [(_held(body), body) for body in listing.get("items") or []]
        listing = api.sanitize_for_serialization(networking.list_namespaced_network_policy(name))
        policies += listing.get("items") or []
    now = oracle.cluster(list_pools(api), services, labels, policies)
    return now, _claims(api, population.tag)


def _problems(
    api: client.ApiClient, population: Population, leader: OperatorProcess | None
) -> tuple[list[str], oracle.Cluster, set[str]]:
    now, claims = _cluster(api, population)
    mine = {name for name in now.pools if name.startswith(f"{population.tag}-")}
    found = [str(v) for v in oracle.judge(now, mine)]
    held = set(now.holders())
    if claims != held:
        found.append(
            f"[claims] {len(claims)} claims, {len(held)} held addresses: "
            f"claimed only {sorted(claims - held)[:10]}, held only {sorted(held - claims)[:10]}"
        )
    found += [
        f"[pool-gone] IPPool {p} was deleted, still there"
        for p in population.deleted_pools
        if p in now.pools
    ]
    metrics = leader.metrics() if leader is not None else ""
    found += [
        f"[metric-series] {line}"
        for pool in population.deleted_pools
        for line in re.findall(
            rf'^\S+\{{[^}}]*pool="{re.escape(pool)}"[^}}]*\}} .*$', metrics, re.M
        )
    ]
    if leader is None:
        found.append("[leader] no replica leads")
    return found, now, claims


def settle(
    api: client.ApiClient,
    population: Population,
    leader: Callable[[], OperatorProcess | None],
    monitors: list[Monitor],
    timeout: float,
) -> Ending:
    """Poll until nothing is wrong twice in a row, or `timeout`; the watch's losses are added
    at the end (a flap leaves no trace in the objects)."""
    started = time.monotonic()
    ending = Ending()
    clean = 0
    while True:
        try:
            found, now, claims = _problems(api, population, leader())
        except (client.ApiException, urllib3.exceptions.HTTPError, OSError) as error:
            found, now, claims = [f"[unreachable] {error}"], None, set()
        clean = 0 if found else clean + 1
        if clean >= 2 or time.monotonic() - started > timeout:
            break
        time.sleep(2)
    ending.settle_seconds = round(time.monotonic() - started, 1)
    ending.violations = found + [f"[flap] {v}" for m in monitors for v in m.violations(api)]
    if now is not None:
        ending.services = len(now.services)
        ending.held = len(now.holders())
        ending.claims = len(claims)
    return ending

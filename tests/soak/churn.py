"""A standing population of Services and a user churning around it at a steady rate.

Everything the soak makes is named `soak-<tag>-…` and labelled `soak=<tag>`, with addresses
from 172.20.0.0/14, which no other test uses:

- standing namespaces `…-s<i>` hold the standing Services (from the main pool, never moved:
  the flap watch covers them) and the churned Services created and deleted around them;
- the elastic pool grows by a fresh /28 and shrinks by its oldest one (a range is never used
  twice, so an address revoked by a shrink is in no pool afterwards);
- churn namespaces `…-n<k>` come and go, each with a temporary pool of its own (deleted with
  the namespace) and Services pinned to it or to the elastic pool, which edits repoint.
"""

from __future__ import annotations

import ipaddress
import itertools
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from tests.faults.checker import GROUP, PLURAL, VERSION
from tests.kit import service_manifest

MERGE = "application/merge-patch+json"
MAIN = "172.20.0.0/16"
ELASTIC_BASE = "172.21.0.0/28"
ELASTIC_SLICES = ipaddress.ip_network("172.21.0.0/16").subnets(new_prefix=28)
TEMPORARY_SLICES = ipaddress.ip_network("172.22.0.0/15").subnets(new_prefix=28)
PER_NAMESPACE = 500  # standing Services per standing namespace
CHURN_NAMESPACES = 2  # live at a time, around this
SOURCE_RANGES = (["198.18.0.0/24"], ["198.18.7.0/24", "198.18.9.0/24"], None)
TOLERATED = (404, 409, 422)  # gone already, made already, refused: the user's side of a race


@dataclass
class ChurnNamespace:
    name: str
    pool: str
    services: list[str]


class Population:
    """What the soak made in the cluster, by name; the churn thread and the checks read it."""

    def __init__(self, api: client.ApiClient, standing: int, churning: int) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.tag = f"soak-{random.randrange(16**6):06x}"
        self.standing = standing
        self.churning_target = churning
        count = max(1, -(-standing // PER_NAMESPACE))
        self.standing_namespaces = [f"{self.tag}-s{i}" for i in range(count)]
        self.main_pool = f"{self.tag}-main"
        self.elastic_pool = f"{self.tag}-elastic"
        self.elastic_slices = [str(next(ELASTIC_SLICES))]
        self.churned: list[tuple[str, str]] = []  # (namespace, name) of churned Services
        self.local: list[tuple[str, str]] = []  # Services with externalTrafficPolicy: Local
        self.churn_namespaces: list[ChurnNamespace] = []
        self.deleted_pools: list[str] = []
        self._made = itertools.count()

    # ---- names -----------------------------------------------------------------------------

    def namespaces(self) -> list[str]:
        """Every namespace of the soak that exists now (churn ones may be terminating)."""
        return self.standing_namespaces + [n.name for n in self.churn_namespaces]

    def pools(self) -> list[str]:
        return [self.main_pool, self.elastic_pool, *(n.pool for n in self.churn_namespaces)]

    def live(self) -> int:
        """Services the soak keeps now: standing, churned and in churn namespaces."""
        return (
            self.standing + len(self.churned) + sum(len(n.services) for n in self.churn_namespaces)
        )

    # ---- making ----------------------------------------------------------------------------

    def _namespace(self, name: str) -> None:
        meta = client.V1ObjectMeta(name=name, labels={"soak": self.tag})
        self.core.create_namespace(client.V1Namespace(metadata=meta))

    def _pool(self, name: str, addresses: list[str], auto: bool) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "IPPool",
            "metadata": {"name": name},
            "spec": {
                "addresses": addresses,
                "autoAssign": auto,
                "namespaceSelector": {"matchLabels": {"soak": self.tag}},
            },
        }
        self.custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)

    def _service(
        self, namespace: str, name: str, *, pool: str | None = None, local: bool = False
    ) -> None:
        annotations = {"lbipam.io/pool": pool} if pool else {}
        manifest = service_manifest(
            name,
            annotations=annotations,
            externalTrafficPolicy="Local" if local else "Cluster",
            # Drawn as the churn draws them, so the number of NetworkPolicies starts where
            # the churn keeps it, instead of climbing towards it for the whole run.
            loadBalancerSourceRanges=random.choice(SOURCE_RANGES) if local else None,
        )
        self.core.create_namespaced_service(namespace, manifest)
        if local:
            self.local.append((namespace, name))

    def set_up(self) -> None:
        """The pools and standing namespaces; the Services come with `fill`."""
        self._pool(self.main_pool, [MAIN], auto=True)
        self._pool(self.elastic_pool, [ELASTIC_BASE, *self.elastic_slices], auto=False)
        for name in self.standing_namespaces:
            self._namespace(name)

    def fill(self, workers: int = 8) -> None:
        """The standing Services, then the churned ones up to their target, in parallel."""
        jobs: list[Callable[[], None]] = []
        for index in range(self.standing):
            namespace = self.standing_namespaces[index % len(self.standing_namespaces)]
            local = index % 10 == 0
            jobs.append(
                lambda n=namespace, i=index, lo=local: self._service(n, f"st-{i}", local=lo)
            )
        jobs += [self.create_churned for _ in range(self.churning_target)]
        jobs += [self.add_namespace for _ in range(CHURN_NAMESPACES)]
        with ThreadPoolExecutor(workers) as pool:
            for done in [pool.submit(job) for job in jobs]:
                done.result()

    def create_churned(self) -> None:
        namespace = random.choice(self.standing_namespaces)
        name = f"ch-{next(self._made)}"
        local = random.random() < 0.3
        self._service(namespace, name, local=local)
        self.churned.append((namespace, name))

    def add_namespace(self) -> None:
        """A namespace with a pool of its own and Services pinned to it or to the elastic one."""
        made = next(self._made)
        entry = ChurnNamespace(f"{self.tag}-n{made}", f"{self.tag}-t{made}", [])
        self._namespace(entry.name)
        self._pool(entry.pool, [str(next(TEMPORARY_SLICES))], auto=False)
        for index, pool in enumerate((entry.pool, entry.pool, self.elastic_pool, None)):
            self._service(entry.name, f"p-{index}", pool=pool, local=index == 1)
            entry.services.append(f"p-{index}")
        self.churn_namespaces.append(entry)

    def remove_namespace(self) -> None:
        """The namespace goes, its Services with it; then its pool (which waits for them)."""
        entry = self.churn_namespaces.pop(0)
        self.local = [(n, s) for n, s in self.local if n != entry.name]
        self.core.delete_namespace(entry.name)
        self.custom.delete_cluster_custom_object(GROUP, VERSION, PLURAL, entry.pool)
        self.deleted_pools.append(entry.pool)

    def delete_churned(self) -> None:
        namespace, name = self.churned.pop(random.randrange(len(self.churned)))
        if (namespace, name) in self.local:
            self.local.remove((namespace, name))
        self.core.delete_namespaced_service(name, namespace)

    def _patch(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.core.patch_namespaced_service(name, namespace, patch, _content_type=MERGE)

    def touch(self) -> None:
        """An annotation no one reads: an update event on any Service, standing ones too."""
        index = random.randrange(self.standing)
        namespace, name = (
            self.standing_namespaces[index % len(self.standing_namespaces)],
            f"st-{index}",
        )
        if random.random() < 0.5 and self.churned:
            namespace, name = random.choice(self.churned)
        annotation = {"soak.example/touched": str(next(self._made))}
        self._patch(namespace, name, {"metadata": {"annotations": annotation}})

    def source_ranges(self) -> None:
        """New loadBalancerSourceRanges on a Local Service: its NetworkPolicy follows."""
        namespace, name = random.choice(self.local)
        ranges = random.choice(SOURCE_RANGES)
        self._patch(namespace, name, {"spec": {"loadBalancerSourceRanges": ranges}})

    def repoint(self) -> None:
        """lbipam.io/pool edited in a churn namespace: the Service moves, as asked."""
        entry = random.choice(self.churn_namespaces)
        name = random.choice(entry.services)
        pool = random.choice((entry.pool, self.elastic_pool))
        self._patch(entry.name, name, {"metadata": {"annotations": {"lbipam.io/pool": pool}}})

    def _elastic(self) -> None:
        spec = {"addresses": [ELASTIC_BASE, *self.elastic_slices]}
        self.custom.patch_cluster_custom_object(
            GROUP, VERSION, PLURAL, self.elastic_pool, {"spec": spec}, _content_type=MERGE
        )

    def grow(self) -> None:
        self.elastic_slices.append(str(next(ELASTIC_SLICES)))
        self._elastic()

    def shrink(self) -> None:
        """The oldest slice goes: its holders are revoked and move to the others."""
        if len(self.elastic_slices) > 1:
            self.elastic_slices.pop(0)
            self._elastic()

    def cleanup(self) -> None:
        """Namespaces, then pools (their finalizer released: no operator is left to do it)."""
        for name in self.namespaces():
            try:
                self.core.delete_namespace(name)
            except client.ApiException as error:
                if error.status != 404:
                    raise
        for name in [*self.pools(), *self.deleted_pools]:
            for patch_or_delete in (
                lambda n=name: self.custom.patch_cluster_custom_object(
                    GROUP,
                    VERSION,
                    PLURAL,
                    n,
                    {"metadata": {"finalizers": None}},
                    _content_type=MERGE,
                ),
                lambda n=name: self.custom.delete_cluster_custom_object(GROUP, VERSION, PLURAL, n),
            ):
                try:
                    patch_or_delete()
                except client.ApiException as error:
                    if error.status != 404:
                        raise


class Churn(threading.Thread):
    """Does one random edit every 1/`rate` seconds until stopped; counts what it did."""

    def __init__(self, population: Population, rate: float, seed: int = 28) -> None:
        super().__init__(name="soak-churn", daemon=True)
        self.population = population
        self.rate = rate
        self.random = random.Random(seed)
        self.done: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()  # 404/409/422: a race the user lost
        self.errors: list[str] = []
        self.seconds = 0.0
        self._halt = threading.Event()

    def _actions(self) -> list[tuple[float, Callable[[], None]]]:
        p = self.population
        grow = 3.0 if len(p.churned) < p.churning_target else 1.0
        return [
            (grow, p.create_churned),
            (4.0 - grow if p.churned else 0.0, p.delete_churned),
            (2.0, p.touch),
            (1.0 if p.local else 0.0, p.source_ranges),
            (0.5 if p.churn_namespaces else 0.0, p.repoint),
            (0.3, p.grow),
            (0.3, p.shrink),
            (0.25 if len(p.churn_namespaces) <= CHURN_NAMESPACES else 0.1, p.add_namespace),
            (0.25 if len(p.churn_namespaces) >= CHURN_NAMESPACES else 0.0, p.remove_namespace),
        ]

    def run(self) -> None:
        started = time.monotonic()
        due = started
        while not self._halt.is_set():
            actions = self._actions()
            action = self.random.choices([a for _, a in actions], [w for w, _ in actions])[0]
            name = action.__name__
            try:
                action()
                self.done[name] += 1
            except client.ApiException as error:
                if error.status not in TOLERATED:
                    self.errors.append(f"{name}: {error.status} {error.reason}")
                self.refused[name] += 1
            except Exception as error:  # reported, and the churn goes on at its rate
                self.errors.append(f"{name}: {error!r}")
            due += 1 / self.rate
            self._halt.wait(max(0.0, due - time.monotonic()))
        self.seconds = time.monotonic() - started

    def stop(self) -> None:
        self._halt.set()
        self.join(60)

    @property
    def per_second(self) -> float:
        return sum(self.done.values()) / self.seconds if self.seconds else 0.0


def wait_addressed(
    core: client.CoreV1Api, namespaces: Iterable[str], count: int, timeout: float
) -> int:
    """Until `count` Services in `namespaces` hold an address; returns how many do."""
    deadline = time.monotonic() + timeout
    holding = 0
    while time.monotonic() < deadline:
        holding = sum(
            1
            for namespace in namespaces
            for service in core.list_namespaced_service(namespace).items
            if service.status.load_balancer and service.status.load_balancer.ingress
        )
        if holding >= count:
            break
        time.sleep(2)
    return holding

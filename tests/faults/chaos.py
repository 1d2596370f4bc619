"""Randomized chaos on the real cluster: seeded steps, every invariant after every step, shrinking.

A run is a series of episodes. An episode starts from nothing of its own (two fresh namespaces,
a fresh address block, a fresh Lease namespace and two fresh `lbipam run` replicas with leader
election), then plays steps drawn from a seeded `random.Random`: pools, Services, namespace
labels, source ranges, and faults done to the operator, the API server or etcd. After each step the
driver waits, within a bound, for the cluster to settle with every invariant of `oracle` true;
the wait is measured. A failure is replayed from scratch with steps cut away (delta debugging)
while it still fails the same invariant, and the shortest sequence is printed with the seed.

Steps name things logically (namespace "a", pool "p3", address "{v4}.9"), so a sequence
replays in any episode.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import logging
import os
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client

from tests.controlplane import ControlPlane
from tests.faults import oracle
from tests.faults.checker import (
    GROUP,
    PLURAL,
    VERSION,
    Held,
    Loss,
    Monitor,
    _held,
    _interval,
    list_pools,
)
from tests.faults.hangs import freeze
from tests.faults.oracle import Violation
from tests.faults.partition import Partition
from tests.faults.replicas import LEASE_SECONDS, Replicas
from tests.kit import SYSTEM, service_manifest

log = logging.getLogger("chaos")
MERGE = "application/merge-patch+json"
CLASSES = (None, "lbipam.io/lb", "other.example/lb")  # no class, ours, someone else's
V4_ENTRIES = (
    "{v4}.0/29",
    "{v4}.8/30",
    "{v4}.12/31",
    "{v4}.14/32",
    "{v4}.4-{v4}.9",
    "{v4}.16-{v4}.19",
    "{v4}.20",
    "{v4}.16/28",
)
V6_ENTRIES = ("{v6}::/126", "{v6}::4-{v6}::5", "{v6}::8", "{v6}::8/125")
PORTS = ((80, "TCP"), (443, "TCP"), (53, "UDP"))
# The logical namespaces a Service sharing its key consents to (lbipam.io/sharing-cross-namespace).
CONSENTS: tuple[list[str], ...] = ([], ["a"], ["b"], ["a", "b"], ["*"])
# Our IPAddress claims' label; the API server's allocator claims ClusterIPs for Services too.
CLAIMED_BY = ("ipaddress.kubernetes.io/managed-by", "lbipam.io")
RELEASE_HOLDS = ("0s", "5s", "10s", "30s")
# A Node's addresses: in the episode's block (pools may contain them) or outside it.
NODE_ADDRESSES = ("{v4}.3", "{v4}.9", "{v4}.17", "{v6}::5", "192.0.2.7", "198.51.100.3")
SOURCE_RANGES = ("198.18.0.0/24", "198.18.7.0/24", "2001:db8:1::/48", "0.0.0.0/0")
FAMILY_CHOICES = (
    ("SingleStack", ["IPv4"]),
    ("SingleStack", ["IPv4"]),
    ("SingleStack", ["IPv6"]),
    ("PreferDualStack", ["IPv4", "IPv6"]),
    ("RequireDualStack", ["IPv4", "IPv6"]),
    ("RequireDualStack", ["IPv6", "IPv4"]),
)
MAX_POOLS, MAX_SERVICES = 5, 12
HURRY = 0.3  # share of steps the next one follows without waiting: races nobody scripted
PAUSES = (0.0, 0.0, 0.1, 0.3, 0.6)  # ...after this long: the operator is mid-way through
# The steps that stop, freeze, cut off or depose a leader: each may end its term between a
# status write and the Events that tell of it.
FAULTS = (
    "kill_leader",
    "freeze_leader",
    "restart_apiserver",
    "steal_lease",
    "freeze_control_plane",
    "partition",
)
SETTLE_BOUND = 120.0  # seconds after a step before a standing violation fails the run
QUIET_BOUND = 20.0  # ...or this long with nothing changing in the cluster
_blocks = itertools.count()
# The first replica runs behind a network partition it can be cut off by (network namespaces
# need root; without it the partition step does nothing).
PARTITIONED = os.geteuid() == 0


@dataclass(frozen=True)
class Step:
    """One thing done to the cluster, in logical names; `repr` is valid Python."""

    action: str
    target: str = ""
    args: Mapping[str, Any] = field(default_factory=dict)
    hurry: float | None = None  # seconds until the next step, which then comes unsettled

    def __str__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        later = "" if self.hurry is None else f" (next after {self.hurry}s, unsettled)"
        return f"{self.action} {self.target} {shown}".strip() + later


@dataclass
class Plan:
    """What the steps so far have made, in logical names: what the next step may touch."""

    pools: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted: dict[str, dict[str, Any]] = field(default_factory=dict)  # until seen gone
    services: dict[str, dict[str, Any]] = field(default_factory=dict)  # "a/s1" -> fields
    tiers: dict[str, str | None] = field(default_factory=lambda: {"a": None, "b": None})
    nodes: dict[str, list[list[str]]] = field(default_factory=dict)  # "n4" -> [[type, address]]
    gone: list[str] = field(default_factory=list)  # deleted Services: their addresses may be held
    made: int = 0

    def applicable(self, step: Step) -> bool:
        """Whether the step still makes sense (a shrunk sequence may have lost its target)."""
        kind = step.action
        if kind == "create_pool":
            return step.target not in self.pools
        if kind == "create_service":
            return step.target not in self.services
        if kind == "create_node":
            return step.target not in self.nodes
        if kind in ("edit_node", "delete_node"):
            return step.target in self.nodes
        if kind.endswith("_pool") or kind == "set_release_hold":
            return step.target in self.pools
        if kind in (
            "delete_service",
            "change_class",
            "set_source_ranges",
            "relabel_service",
            "repoint_service",
            "recreate_service",
        ):
            return step.target in self.services
        return True

    def record(self, step: Step) -> None:
        kind, target, args = step.action, step.target, step.args
        self.made += 1
        if kind == "create_pool":
            self.pools[target] = dict(args)
        elif kind == "grow_pool":
            self.pools[target]["addresses"] = [*self.pools[target]["addresses"], args["entry"]]
        elif kind == "shrink_pool":
            pool = self.pools[target]
            if "entry" in args:
                pool["addresses"] = [a for a in pool["addresses"] if a != args["entry"]]
            else:
                pool["exclude"] = [*pool.get("exclude", []), args["exclude"]]
        elif kind == "toggle_pool":
            self.pools[target]["disabled"] = args["disabled"]
        elif kind == "delete_pool":
            self.deleted[target] = self.pools.pop(target)
        elif kind == "create_service":
            self.services[target] = dict(args)
        elif kind == "delete_service":
            del self.services[target]
            self.gone.append(target)
        elif kind == "change_class":
            self.services[target]["class"] = args["class"]
        elif kind == "set_source_ranges":
            self.services[target]["ranges"] = args["ranges"]
        elif kind == "relabel_service":
            self.services[target]["team"] = args["team"]
        elif kind == "repoint_service":
            self.services[target].update(args)
        elif kind == "label_namespace":
            self.tiers[target] = args["tier"]
        elif kind == "set_release_hold":
            self.pools[target]["releaseHold"] = args["releaseHold"]
        elif kind in ("create_node", "edit_node"):
            self.nodes[target] = args["addresses"]
        elif kind == "delete_node":
            del self.nodes[target]


def propose(rng: random.Random, plan: Plan) -> Step:
    """A random next step, weighted so pools and Services churn and faults stay occasional."""
    pools, services = sorted(plan.pools), sorted(plan.services)
    n = plan.made
    choices: list[tuple[float, Callable[[], Step]]] = [
        (
            3.0 if len(pools) < MAX_POOLS else 0.0,
            lambda: _tenancy(rng, plan, _new_pool(rng, f"p{n}")),
        ),
        (4.0 if len(services) < MAX_SERVICES else 0.0, lambda: _new_service(rng, plan, n)),
        (1.0, lambda: Step("label_namespace", rng.choice("ab"), {"tier": _tier(rng)})),
        (0.4, lambda: Step("kill_leader")),
        (0.3, lambda: Step("freeze_leader", args={"seconds": LEASE_SECONDS + 2})),
        (0.3, lambda: Step("restart_apiserver")),
        # Hangs, not refusals: the API server or etcd stops answering past the Lease.
        (0.2, lambda: Step("freeze_control_plane", "apiserver", {"seconds": LEASE_SECONDS + 2})),
        (0.2, lambda: Step("freeze_control_plane", "etcd", {"seconds": LEASE_SECONDS + 2})),
        (0.3, lambda: Step("steal_lease")),
        # Packets to and from the API server dropped, then healed: shorter and longer than the
        # Lease, whether the replica behind it leads or follows.
        (0.3, lambda: Step("partition", args={"seconds": rng.choice((1.5, LEASE_SECONDS + 2))})),
        (0.6 if len(plan.nodes) < 3 else 0.0, lambda: _node(rng, "create_node", f"n{n}")),
    ]
    if plan.nodes:
        nodes = sorted(plan.nodes)
        choices += [
            (0.5, lambda: _node(rng, "edit_node", rng.choice(nodes))),
            (0.3, lambda: Step("delete_node", rng.choice(nodes))),
        ]
    if plan.gone and len(services) < MAX_SERVICES:
        # Someone else asks for an address that may be held after release for a gone Service.
        choices.append((1.0, lambda: _steal(rng, plan, n)))
    if pools:
        choices += [
            (1.5, lambda: _grow(rng, plan, rng.choice(pools))),
            (1.5, lambda: _shrink(rng, plan, rng.choice(pools))),
            (1.0, lambda: _toggle(plan, rng.choice(pools))),
            (1.0, lambda: Step("delete_pool", rng.choice(pools))),
            (0.5, lambda: _release_hold(rng, rng.choice(pools))),
        ]
    if services:
        choices += [
            (2.0 + len(services) / 3, lambda: Step("delete_service", rng.choice(services))),
            (1.0, lambda: _change_class(rng, plan, rng.choice(services))),
            (1.0, lambda: _ranges(rng, rng.choice(services))),
            (0.5, lambda: Step("relabel_service", rng.choice(services), {"team": _team(rng)})),
            (0.7, lambda: _repoint(rng, plan, rng.choice(services))),
            (1.5, lambda: Step("recreate_service", rng.choice(services))),
        ]
    weights = [w for w, _ in choices]
    step = rng.choices([make for _, make in choices], weights)[0]()
    return replace(step, hurry=rng.choice(PAUSES) if rng.random() < HURRY else None)


def _tier(rng: random.Random) -> str | None:
    return rng.choice((None, "gold", "silver"))


def _team(rng: random.Random) -> str:
    return rng.choice(("red", "blue"))


def _new_pool(rng: random.Random, name: str) -> Step:
    addresses = rng.sample(V4_ENTRIES, rng.choice((1, 1, 2)))
    if rng.random() < 0.5:
        addresses.append(rng.choice(V6_ENTRIES))
    spec: dict[str, Any] = {
        "addresses": addresses,
        "autoAssign": rng.random() < 0.8,
        "priority": rng.choice((0, 0, 1, 2)),
        "tier": rng.choice((None, None, "gold")),
        "team": rng.choice((None, None, None, "red")),
    }
    if rng.random() < 0.2:
        spec["allowFirstLastIPs"] = True
    if rng.random() < 0.1:
        spec["avoidBuggyIPs"] = True
    if rng.random() < 0.2:
        spec["exclude"] = [_address(rng, 4)]
    if rng.random() < 0.5:
        spec["releaseHold"] = rng.choice(RELEASE_HOLDS)
    return Step("create_pool", name, spec)


def _release_hold(rng: random.Random, name: str) -> Step:
    """Changing releaseHold ends or lengthens running holds (their end is read anew)."""
    return Step("set_release_hold", name, {"releaseHold": rng.choice(RELEASE_HOLDS)})


def _node(rng: random.Random, action: str, name: str) -> Step:
    """A Node without a kubelet: one or two InternalIP/ExternalIP addresses, in the episode's
    block or outside it."""
    chosen = rng.sample(NODE_ADDRESSES, rng.choice((1, 1, 2)))
    kinds = ("InternalIP", "ExternalIP")
    return Step(action, name, {"addresses": [[kinds[i], a] for i, a in enumerate(chosen)]})


def _steal(rng: random.Random, plan: Plan, n: int) -> Step:
    """A new Service of either namespace asking for the address a gone Service held (if it is
    held for it after release when the step is done)."""
    victim = rng.choice(plan.gone[-4:])
    fields: dict[str, Any] = {
        "policy": "SingleStack",
        "families": ["IPv4"],
        "class": None,
        "team": _team(rng),
        "ports": [PORTS[0]],
        "ranges": [],
        "local": False,
        "steal": victim,
    }
    return Step("create_service", f"{rng.choice('ab')}/s{n}", fields)


def _tenancy(rng: random.Random, plan: Plan, step: Step) -> Step:
    """Now and then, addresses reserved for a namespace or one of its Services, and a
    perNamespaceLimit (docs/reference.md "Reservations", "Per-namespace limit")."""
    args = dict(step.args)
    if rng.random() < 0.3:
        namespace = rng.choice("ab")
        names = [t.split("/")[1] for t in sorted(plan.services) if t.startswith(f"{namespace}/")]
        service = rng.choice(names) if names and rng.random() < 0.5 else None
        family = 4 if rng.random() < 0.8 else 6
        wanted = sorted({_address(rng, family) for _ in range(rng.choice((1, 2, 3)))})
        args["reserve"] = {"namespace": namespace, "service": service, "addresses": wanted}
    if rng.random() < 0.25:
        args["limit"] = rng.choice((0, 1, 1, 2))
    return replace(step, args=args)


def _reserved_inside(addresses: list[str], wanted: list[str]) -> list[str]:
    """The wanted addresses inside the pool's entries as written: the others would make the
    pool invalid (a shrink may leave a reservation outside)."""
    entries = [_interval(entry) for entry in addresses]
    inside = []
    for address in wanted:
        family, value, _ = _interval(address)
        if any(f == family and a <= value <= b for f, a, b in entries):
            inside.append(address)
    return inside


def _address(rng: random.Random, family: int) -> str:
    return f"{{v4}}.{rng.randrange(24)}" if family == 4 else f"{{v6}}::{rng.randrange(16):x}"


def _grow(rng: random.Random, plan: Plan, name: str) -> Step:
    have = plan.pools[name]["addresses"]
    return Step(
        "grow_pool",
        name,
        {"entry": rng.choice([e for e in V4_ENTRIES + V6_ENTRIES if e not in have])},
    )


def _shrink(rng: random.Random, plan: Plan, name: str) -> Step:
    have = plan.pools[name]["addresses"]
    if len(have) > 1 and rng.random() < 0.7:
        return Step("shrink_pool", name, {"entry": rng.choice(have)})
    return Step("shrink_pool", name, {"exclude": _address(rng, 4 if rng.random() < 0.8 else 6)})


def _toggle(plan: Plan, name: str) -> Step:
    return Step("toggle_pool", name, {"disabled": not plan.pools[name].get("disabled", False)})


def _new_service(rng: random.Random, plan: Plan, n: int) -> Step:
    policy, families = rng.choice(FAMILY_CHOICES)
    fields: dict[str, Any] = {
        "policy": policy,
        "families": families,
        "class": rng.choices(CLASSES, (7, 2, 1))[0],
        "team": _team(rng),
        "ports": sorted(rng.sample(PORTS, rng.choice((1, 1, 2)))),
        "ranges": _range_list(rng) if rng.random() < 0.25 else [],
        "local": rng.random() < 0.3,
    }
    if plan.pools and rng.random() < 0.2:
        fields["pools"] = rng.sample(sorted(plan.pools), 1)
    elif rng.random() < 0.03:
        fields["pools"] = ["nowhere"]
    if rng.random() < 0.15:
        fields["ips"] = [_address(rng, 4 if families[0] == "IPv4" else 6)]
    elif rng.random() < 0.05:
        fields["loadBalancerIP"] = _address(rng, 4)
    if rng.random() < 0.25:
        fields["sharing"] = rng.choice(("web", "dns"))
        if rng.random() < 0.6:
            fields["consent"] = rng.choice(CONSENTS[1:])
    return Step("create_service", f"{rng.choice('ab')}/s{n}", fields)


def _repoint(rng: random.Random, plan: Plan, target: str) -> Step:
    """A user editing lbipam.io/pool, lbipam.io/sharing-key or lbipam.io/sharing-cross-namespace
    (consent granted or withdrawn): the Service may move, as asked."""
    roll = rng.random()
    if roll < 0.5:
        named = rng.choice([[], ["nowhere"], *([p] for p in sorted(plan.pools))])
        return Step("repoint_service", target, {"pools": named})
    if roll < 0.8:
        return Step("repoint_service", target, {"sharing": rng.choice((None, "web", "dns"))})
    return Step("repoint_service", target, {"consent": rng.choice(CONSENTS)})


def _range_list(rng: random.Random) -> list[str]:
    return sorted(rng.sample(SOURCE_RANGES, rng.choice((1, 1, 2))))


def _ranges(rng: random.Random, target: str) -> Step:
    return Step(
        "set_source_ranges", target, {"ranges": _range_list(rng) if rng.random() < 0.7 else []}
    )


def _change_class(rng: random.Random, plan: Plan, target: str) -> Step:
    current = plan.services[target]["class"]
    return Step("change_class", target, {"class": rng.choice([c for c in CLASSES if c != current])})


class GainMonitor(Monitor):
    """The fault suite's watch, also noting when each Service was seen gaining each address."""

    def __init__(self, kubeconfig: str, namespace: str) -> None:
        super().__init__(kubeconfig, namespace)
        self.gained: dict[tuple[str, str], list[float]] = defaultdict(list)

    def _see(self, service: Any, deleted: bool = False) -> None:
        uid = service.metadata.uid
        with self._lock:
            before = self.held.get(uid, ())
        super()._see(service, deleted)
        with self._lock:
            for address in set(self.held.get(uid, ())) - set(before):
                self.gained[(uid, address)].append(time.monotonic())


class Failure(Exception):
    """Invariants still broken when the settle bound ran out."""

    def __init__(self, index: int, step: Step, violations: list[Violation], logs: str) -> None:
        self.index = index
        self.step = step
        self.violations = violations
        self.logs = logs
        super().__init__(self.describe())

    @property
    def invariants(self) -> set[str]:
        return {v.invariant for v in self.violations}

    def describe(self) -> str:
        shown = "\n  ".join(str(v) for v in self.violations[:20])
        return f"after step {self.index + 1} ({self.step}):\n  {shown}"


class Env:
    """The session's control plane, clients and the operator's credentials, for every episode."""

    def __init__(self, plane: ControlPlane, api: client.ApiClient, kubeconfig: Path) -> None:
        self.plane = plane
        self.api = api
        self.kubeconfig = kubeconfig
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.networking = client.NetworkingV1Api(api)


def covering(pools: list[oracle.PoolModel], v4: str, v6: str) -> dict[str, frozenset[str]]:
    """What each pool covers of the episode block (its holders keep those), written as
    statuses write them (`2001:db8::`, not `2001:db8::0`: the first IPv6 address must compare
    equal)."""
    block = [f"{v4}.{i}" for i in range(32)] + [f"{v6}::{i:x}" for i in range(16)]
    canonical = {str(ipaddress.ip_address(a)) for a in block}
    return {p.name: frozenset(a for a in canonical if p.covers(a)) for p in pools}


def left(address: str, named: tuple[str, ...], covered: Mapping[str, frozenset[str]]) -> bool:
    """Whether no pool the Service may keep `address` from covers it: the pools its
    lbipam.io/pool names, or any pool when none of those exists (the Service then keeps
    what some pool covers)."""
    scope = [p for p in covered if p in named] or list(covered)
    return not any(address in covered[p] for p in scope)


class Episode:
    """One fresh start: namespaces, an address block, two replicas; plays and judges steps."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.tag = f"ch{uuid.uuid4().hex[:6]}"
        block = next(_blocks) % 12_800
        self.v4 = f"10.{200 + block // 256}.{block % 256}"
        self.v6 = f"2001:db8:c4a0:{block:x}"
        self.namespaces = {logical: f"{self.tag}-{logical}" for logical in "ab"}
        self.plan = Plan()
        self.done: list[Step] = []
        self.failure: Failure | None = None
        self.settle_times: list[float] = []
        self.before: dict[str, tuple[str, ...]] = {}  # uid -> addresses at the last settle
        self.kept: dict[str, str] = {}  # address -> for whom it was held after release then
        self.kept_until: dict[str, float] = {}  # ...and when that hold ends
        self.owned: dict[str, str] = {}  # address -> which Service (namespace/name) held it then
        self.last: oracle.Cluster | None = None  # the latest read
        self.known_pools: dict[str, oracle.PoolModel] = {}
        # When each step since the last settle was done, and what each pool covered after it.
        self.coverage: list[tuple[float, dict[str, frozenset[str]]]] = []
        # Services whose class changed since the last settle (they passed through ClusterIP, so
        # they were not ours for a moment) or whose lbipam annotations the user edited: they
        # may come back with another address.
        self.reborn: set[str] = set()
        self.hurried = False  # a step since the last settle did not wait
        # The Nodes' addresses at the last settle: a Node that comes up while an unsettled
        # step's decisions are in flight may find its address just handed out (the operator
        # had not seen it yet); its holder keeps it and is told, as any holder would.
        self.nodes_before: frozenset[str] = frozenset()
        # A fault came while an unsettled step's decisions were in flight: a leader may have
        # lost its term between a status write and its Events, which are then never posted.
        self.deposed = False
        # As deployed: the operator's ServiceAccount, its Lease in its own namespace.
        self.replicas = Replicas(env.plane, SYSTEM, KUBECONFIG=str(env.kubeconfig))
        self.monitors: list[GainMonitor] = []
        self.seen_losses = [0, 0]
        self.partition: Partition | None = None

    def start(self) -> None:
        """Namespaces, watches, then the two replicas; a replica that never leads is a finding."""
        for name in self.namespaces.values():
            meta = client.V1ObjectMeta(name=name, labels={"chaos": self.tag})
            self.env.core.create_namespace(client.V1Namespace(metadata=meta))
        kubeconfig = str(self.env.plane.kubeconfig)
        self.monitors = [GainMonitor(kubeconfig, ns).ready() for ns in self.namespaces.values()]
        if PARTITIONED:
            self.partition = Partition(self.env.plane)
            self.replicas.behind(self.partition, self.env.kubeconfig)
        try:
            self.replicas.start(timeout=SETTLE_BOUND)
        except AssertionError as error:
            found = [Violation("leader", str(error))]
            raise Failure(-1, Step("start"), found, self.replicas.logs()) from error

    # ---- names -----------------------------------------------------------------------------

    def pool(self, logical: str) -> str:
        return f"{self.tag}-{logical}"

    def render(self, template: str) -> str:
        return template.format(v4=self.v4, v6=self.v6)

    def service(self, target: str) -> tuple[str, str]:
        logical, name = target.split("/")
        return self.namespaces[logical], name

    # ---- doing -----------------------------------------------------------------------------

    def do(self, step: Step) -> None:
        """Carry the step out on the cluster; a write the API server refuses is not a finding."""
        # Stamped before the request: the operator may act on it before the call returns, and
        # a loss seen then must already count the pools as the step leaves them.
        started = time.monotonic()
        self.deposed |= self.hurried and step.action in FAULTS
        try:
            getattr(self, f"_{step.action}")(step)
        except client.ApiException as error:
            if error.status not in (404, 409, 422):
                raise
        self.plan.record(step)
        self.coverage.append((started, self._covering()))

    def _covering(self) -> dict[str, frozenset[str]]:
        """What each pool of the plan covers of the block now; a deleted pool still covers
        until it is seen gone, since deleting a pool must wait for its holders."""
        bodies = [
            {"metadata": {"name": self.pool(name)}, "spec": self._pool_body(name, spec)}
            for name, spec in [*self.plan.pools.items(), *self.plan.deleted.items()]
        ]
        return covering([oracle.PoolModel.of(body) for body in bodies], self.v4, self.v6)

    def _pool_body(self, logical: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "addresses": [self.render(a) for a in spec["addresses"]],
            "exclude": [self.render(a) for a in spec.get("exclude", [])],
            "autoAssign": spec["autoAssign"],
            "priority": spec["priority"],
            "disabled": spec.get("disabled", False),
            "namespaceSelector": {
                "matchLabels": {
                    "chaos": self.tag,
                    **({"tier": spec["tier"]} if spec["tier"] else {}),
                }
            },
        }
        for flag in ("allowFirstLastIPs", "avoidBuggyIPs"):
            if flag in spec:
                body[flag] = spec[flag]
        if spec["team"]:
            body["serviceSelector"] = {"matchLabels": {"team": spec["team"]}}
        body["reservations"] = self._reservations(spec.get("reserve"), body["addresses"])
        if spec.get("limit") is not None:
            body["perNamespaceLimit"] = spec["limit"]
        body["releaseHold"] = spec.get("releaseHold", "0s")
        return body

    def _reservations(
        self, reserve: Mapping[str, Any] | None, addresses: list[str]
    ) -> list[dict[str, Any]]:
        if reserve is None:
            return []
        wanted = [self.render(a) for a in reserve["addresses"]]
        inside = _reserved_inside(addresses, wanted)
        if not inside:
            return []
        entry = {"addresses": inside, "namespace": self.namespaces[reserve["namespace"]]}
        return [entry | ({"service": reserve["service"]} if reserve["service"] else {})]

    def _create_pool(self, step: Step) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "IPPool",
            "metadata": {"name": self.pool(step.target)},
            "spec": self._pool_body(step.target, step.args),
        }
        self.env.custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)

    def _patch_pool(self, step: Step) -> None:
        after = Plan(pools={step.target: dict(self.plan.pools[step.target])})
        after.record(step)
        spec = self._pool_body(step.target, after.pools[step.target])
        self.env.custom.patch_cluster_custom_object(
            GROUP, VERSION, PLURAL, self.pool(step.target), {"spec": spec}, _content_type=MERGE
        )

    _grow_pool = _shrink_pool = _toggle_pool = _set_release_hold = _patch_pool

    def _delete_pool(self, step: Step) -> None:
        self.env.custom.delete_cluster_custom_object(GROUP, VERSION, PLURAL, self.pool(step.target))

    def _annotations(self, args: Mapping[str, Any]) -> dict[str, str | None]:
        """The Service's lbipam annotations in `args`; None removes one (merge patch)."""
        annotations: dict[str, str | None] = {}
        if "pools" in args:
            annotations["lbipam.io/pool"] = ",".join(self.pool(p) for p in args["pools"]) or None
        if "ips" in args:
            annotations["lbipam.io/ips"] = ",".join(self.render(a) for a in args["ips"]) or None
        if "sharing" in args:
            annotations["lbipam.io/sharing-key"] = args["sharing"]
        if "consent" in args:
            listed = ",".join(self.namespaces.get(n, n) for n in args["consent"])
            annotations["lbipam.io/sharing-cross-namespace"] = listed or None
        if "steal" in args and (held := self._held_for(args["steal"])):
            annotations["lbipam.io/ips"] = held
        return annotations

    def _held_for(self, target: str) -> str | None:
        """An IPv4 address held after release for the Service `target` at the last read."""
        key = "/".join(self.service(target))
        last = self.last
        held = [] if last is None else [a for a in last.holds if last.claims[a] == key]
        return next((a for a in sorted(held) if "." in a), None)

    def _create_service(self, step: Step) -> None:
        namespace, name = self.service(step.target)
        args = step.args
        annotations = {k: v for k, v in self._annotations(args).items() if v is not None}
        spec: dict[str, Any] = {
            "ipFamilyPolicy": args["policy"],
            "ipFamilies": args["families"],
            **self._lb_fields(args),
        }
        ports = [
            {
                "name": f"{proto.lower()}-{port}",
                "port": port,
                "targetPort": port + 8000,
                "protocol": proto,
            }
            for port, proto in args["ports"]
        ]
        manifest = service_manifest(
            name, annotations=annotations, labels={"team": args["team"]}, ports=ports, **spec
        )
        self.env.core.create_namespaced_service(namespace, manifest)

    def _lb_fields(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """The fields only a LoadBalancer may carry (cleared while a class change passes
        through ClusterIP)."""
        fields: dict[str, Any] = {
            "type": "LoadBalancer",
            "allocateLoadBalancerNodePorts": False,
            "loadBalancerClass": args["class"],
            "loadBalancerSourceRanges": args["ranges"] or None,
            "externalTrafficPolicy": "Local" if args["local"] else "Cluster",
        }
        if args.get("loadBalancerIP"):
            fields["loadBalancerIP"] = self.render(args["loadBalancerIP"])
        return fields

    def _patch_service(self, target: str, patch: dict[str, Any]) -> None:
        namespace, name = self.service(target)
        self.env.core.patch_namespaced_service(name, namespace, patch, _content_type=MERGE)

    def _delete_service(self, step: Step) -> None:
        namespace, name = self.service(step.target)
        self.env.core.delete_namespaced_service(name, namespace)

    def _recreate_service(self, step: Step) -> None:
        """Deleted and made again as it was: during a hold it must get its address back."""
        namespace, name = self.service(step.target)
        self.reborn.add(f"{namespace}/{name}")
        self.env.core.delete_namespaced_service(name, namespace)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.env.core.read_namespaced_service(name, namespace)
            except client.ApiException as error:
                if error.status == 404:
                    break
                raise
            time.sleep(0.1)
        self._create_service(replace(step, args=self.plan.services[step.target]))

    def node(self, logical: str) -> str:
        return f"{self.tag}-{logical}"

    def _node_status(self, step: Step) -> dict[str, Any]:
        return {
            "addresses": [
                {"type": kind, "address": self.render(a)} for kind, a in step.args["addresses"]
            ]
        }

    def _create_node(self, step: Step) -> None:
        body = {"metadata": {"name": self.node(step.target)}, "status": self._node_status(step)}
        self.env.core.create_node(body)

    def _edit_node(self, step: Step) -> None:
        self.env.core.patch_node_status(self.node(step.target), {"status": self._node_status(step)})

    def _delete_node(self, step: Step) -> None:
        self.env.core.delete_node(self.node(step.target))

    def _change_class(self, step: Step) -> None:
        """The class is immutable on a LoadBalancer: pass through ClusterIP, as a user must."""
        self.reborn.add("/".join(self.service(step.target)))
        fields = dict(self.plan.services[step.target], **step.args)
        cleared = dict.fromkeys(self._lb_fields(fields), None)
        cleared.update(type="ClusterIP", healthCheckNodePort=None)
        self._patch_service(step.target, {"spec": cleared})
        self._patch_service(step.target, {"spec": self._lb_fields(fields)})

    def _set_source_ranges(self, step: Step) -> None:
        ranges = step.args["ranges"] or None
        self._patch_service(step.target, {"spec": {"loadBalancerSourceRanges": ranges}})

    def _repoint_service(self, step: Step) -> None:
        """It may move, as asked; so may the sharing groups it leaves or joins, in either
        namespace (consent given or withdrawn moves Services of both)."""
        moving = {step.target}
        if "sharing" in step.args or "consent" in step.args:
            was = self.plan.services[step.target].get("sharing")
            groups = {was, step.args.get("sharing", was)}
            moving |= {
                target
                for target, fields in self.plan.services.items()
                if fields.get("sharing") in groups - {None}
            }
        self.reborn |= {"/".join(self.service(target)) for target in moving}
        self._patch_service(
            step.target, {"metadata": {"annotations": self._annotations(step.args)}}
        )

    def _relabel_service(self, step: Step) -> None:
        self._patch_service(step.target, {"metadata": {"labels": {"team": step.args["team"]}}})

    def _label_namespace(self, step: Step) -> None:
        patch = {"metadata": {"labels": {"tier": step.args["tier"]}}}
        self.env.core.patch_namespace(self.namespaces[step.target], patch, _content_type=MERGE)

    def _kill_leader(self, _: Step) -> None:
        self.replicas.kill_leader()

    def _freeze_leader(self, step: Step) -> None:
        self.replicas.freeze_leader(step.args["seconds"])

    def _restart_apiserver(self, _: Step) -> None:
        self.env.plane.restart_apiserver()

    def _freeze_control_plane(self, step: Step) -> None:
        freeze(getattr(self.env.plane, step.target), step.args["seconds"])

    def _steal_lease(self, _: Step) -> None:
        self.replicas.steal_lease(self.env.api)

    def _partition(self, step: Step) -> None:
        if self.partition is None:
            return
        behind = self.replicas.all[0]
        led = behind in self.replicas.leaders()
        self.partition.cut()
        try:
            time.sleep(step.args["seconds"])
            # Read from inside its namespace: the health port is not behind the cut.
            log.info(
                "%s      partition: the replica behind it %s, leads now: %s",
                self.tag,
                "led" if led else "followed",
                behind in self.replicas.leaders(),
            )
        finally:
            self.partition.heal()

    # ---- judging ---------------------------------------------------------------------------

    def look(self) -> tuple[oracle.Cluster, tuple[Any, ...]]:
        """One read of the cluster, and a fingerprint that changes whenever anything does."""
        api = self.env.api
        pools = list_pools(api)
        services: list[tuple[Any, Any]] = []
        policies: list[Any] = []
        labels: dict[str, Any] = {}
        for namespace in self.namespaces.values():
            listing = api.sanitize_for_serialization(
                self.env.core.list_namespaced_service(namespace)
            )
            services += [(_held(body), body) for body in listing.get("items") or []]
            listing = api.sanitize_for_serialization(
                self.env.networking.list_namespaced_network_policy(namespace)
            )
            policies += listing.get("items") or []
            labels[namespace] = self.env.core.read_namespace(namespace).metadata.labels or {}
        nodes = api.sanitize_for_serialization(self.env.core.list_node()).get("items") or []
        listing = api.sanitize_for_serialization(
            self.env.networking.list_ip_address(label_selector=f"{CLAIMED_BY[0]}={CLAIMED_BY[1]}")
        )
        ours = set(self.namespaces.values())
        claims = [
            c
            for c in listing.get("items") or []
            if ((c.get("spec") or {}).get("parentRef") or {}).get("namespace") in ours
        ]
        now = oracle.cluster(pools, services, labels, policies, nodes, claims)
        self.last = now
        fingerprint = tuple(
            sorted(
                (o["metadata"]["name"], o["metadata"]["resourceVersion"])
                for o in [*pools, *(body for _, body in services), *policies, *claims]
            )
        )
        leaders = tuple(id(r) for r in self.replicas.serving())
        return now, (fingerprint, leaders)

    def violations(self, now: oracle.Cluster, leaders: tuple[int, ...]) -> list[Violation]:
        mine = {self.pool(p) for p in self.plan.pools} | set(self.known_pools)
        found = oracle.judge(now, mine & now.pools.keys())
        if not self.hurried:  # otherwise pools may have changed under the allocation
            found += oracle.new_addresses(now, self.before, self.kept, self.owned)
            found += oracle.new_reserved(now, self.before)
            found += oracle.namespace_limits(now, self.before, self.kept)
            found += oracle.consent_withdrawn(now, self.before)
            found += self._withdrawn_told(now)
        found += oracle.node_addresses(
            now, self.before, self.nodes_before if self.hurried else None
        )
        found += oracle.holds(now, time.time())
        found += self._told(now)
        found += self._moved(now)
        found += self._gone(now)
        found += self._flaps(now)
        if len(leaders) != 1:
            found.append(Violation("leader", f"{len(leaders)} replicas lead and are ready"))
        return found

    def _told(self, now: oracle.Cluster) -> list[Violation]:
        """A Service holding a Node's address hears ReservedAddressHeld naming the Node; one
        back with its held address hears AddressKept."""
        found = []
        for service in now.services.values():
            for address in service.held.addresses:
                if address in now.nodes and not self._event(
                    service.held, "ReservedAddressHeld", f"Node {now.nodes[address]}"
                ):
                    found.append(
                        Violation("node-told", f"{service.held.key}: {address} is a Node's, untold")
                    )
                # A hold that ran out before the re-create frees the address: no Event then.
                live = self.kept_until.get(address, 0.0) > time.time() + 2
                if (
                    live
                    and self.kept.get(address) == service.held.key
                    and not self._event(service.held, "AddressKept", address)
                ):
                    found.append(Violation("kept-told", f"{service.held.key}: no AddressKept"))
        return found

    def _withdrawn_told(self, now: oracle.Cluster) -> list[Violation]:
        """A Service moved off an address shared across namespaces, as consent was withdrawn,
        hears AddressRevoked naming who does not list which namespace."""
        return [
            Violation("consent-told", f"{younger.held.key}: no AddressRevoked for {address}")
            for _, younger, address in oracle.withdrawals(now, self.before)
            if address not in younger.held.addresses
            and not self._event(younger.held, "AddressRevoked", "does not list namespace")
        ]

    def _event(self, service: Held, reason: str, text: str) -> bool:
        namespace, name = service.key.split("/")
        events = self.env.core.list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={name}"
        )
        return any(
            e.reason == reason
            and e.involved_object.uid == service.uid
            and text in (e.message or "")
            for e in events.items
        )

    def _moved(self, now: oracle.Cluster) -> list[Violation]:
        """A held address only goes when no pool the Service may keep it from covers it any
        more, and the Service then hears AddressRevoked, unless the leader that decided it
        may have been deposed before posting it (the reference: Events are best effort)."""
        found = []
        for uid, service in now.services.items():
            if service.held.key in self.reborn:
                continue
            for address in self.before.get(uid, ()):
                if address in service.held.addresses:
                    continue
                if not (
                    any(left(address, service.named, c) for _, c in self.coverage)
                    or oracle.followed_group(now, service, address)
                ):
                    found.append(
                        Violation(
                            "moved",
                            f"{service.held.key} lost {address}, still in its pools "
                            f"(holds {service.held.addresses})",
                        )
                    )
                elif not self.deposed and not self._revoked_event(service.held, address):
                    found.append(
                        Violation("revoked", f"{service.held.key}: no AddressRevoked for {address}")
                    )
        return found

    def _revoked_event(self, service: Held, address: str) -> bool:
        namespace, name = service.key.split("/")
        events = self.env.core.list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={name}"
        )
        return any(
            e.reason == "AddressRevoked"
            and e.involved_object.uid == service.uid
            and address in (e.message or "")
            for e in events.items
        )

    def _gone(self, now: oracle.Cluster) -> list[Violation]:
        """A pool is gone only once nobody holds an address of it, and only when deleted. A
        Service reborn since (through ClusterIP, say) let go in between: the pool could go."""
        found = []
        for name, pool in self.known_pools.items():
            if name in now.pools:
                continue
            logical = name.removeprefix(f"{self.tag}-")
            if logical in self.plan.pools:
                found.append(Violation("pool-gone", f"IPPool {name} vanished undeleted"))
            kept = [
                f"{s.held.key} {a}"
                for uid, s in now.services.items()
                if s.held.key not in self.reborn
                for a in s.held.addresses
                if a in self.before.get(uid, ()) and pool.covers(a)
            ]
            if kept:
                found.append(
                    Violation("pool-gone", f"IPPool {name} is gone while held: {', '.join(kept)}")
                )
        return found

    def _flaps(self, now: oracle.Cluster) -> list[Violation]:
        """Addresses the watch saw a Service lose since the last settle, still inside its pools."""
        found = []
        for index, monitor in enumerate(self.monitors):
            with monitor._lock:
                losses = monitor.losses[self.seen_losses[index] :]
                gains = {key: list(times) for key, times in monitor.gained.items()}
            found += [
                Violation("flap", f"{loss.key} lost {loss.address} for {loss.then or 'nothing'}")
                for loss in losses
                if loss.key not in self.reborn
                and not self._left_while_held(now, loss, gains.get((loss.uid, loss.address), []))
            ]
        return found

    def _left_while_held(self, now: oracle.Cluster, loss: Loss, gained: list[float]) -> bool:
        """Whether some step, done between the gain and the loss, took the address out of the
        Service's pools (see `left`), or the Service followed its sharing group.

        The state in force when the address was gained counts too: the operator may have
        handed it out from a view one step old.
        """
        gain = max((t for t in gained if t <= loss.at), default=0.0)
        start = max((i for i, (t, _) in enumerate(self.coverage) if t <= gain), default=0)
        service = now.services.get(loss.uid)
        if service is not None and oracle.followed_group(now, service, loss.address):
            return True
        named = service.named if service is not None else ()
        return any(
            left(loss.address, named, covered)
            for t, covered in self.coverage[start:]
            if t <= loss.at
        )

    def settle(self, index: int, step: Step) -> float:
        """Wait for every invariant to hold twice in a row on an unchanged cluster."""
        started = changed = time.monotonic()
        last: tuple[Any, ...] | None = None
        clean = 0
        while True:
            try:
                now, fingerprint = self.look()
                found = self.violations(now, fingerprint[1])
            except (client.ApiException, urllib3.exceptions.HTTPError, OSError) as error:
                now, fingerprint = None, None
                found = [Violation("unreachable", f"could not read the cluster: {error}")]
            moment = time.monotonic()
            if fingerprint != last:
                changed, last, clean = moment, fingerprint, 0
            if found:
                clean = 0
                # A quiet cluster without one leader may still be electing one (a slow start
                # under load can cost a term); only the hard bound ends that wait.
                led = fingerprint is not None and len(fingerprint[1]) == 1
                if moment - started > SETTLE_BOUND or (led and moment - changed > QUIET_BOUND):
                    raise Failure(index, step, found, self.replicas.logs())
            else:
                clean += 1
                if clean >= 2 and now is not None:
                    self._settled(now)
                    return moment - started
            time.sleep(0.2)

    def _settled(self, now: oracle.Cluster) -> None:
        self.before = {uid: s.held.addresses for uid, s in now.services.items()}
        self.kept = {address: now.claims[address] for address in now.holds}
        self.owned = {a: s.held.key for s in now.services.values() for a in s.held.addresses}
        self.kept_until = {address: oracle.hold_end(now, address) for address in now.holds}
        self.nodes_before = frozenset(now.nodes)
        for logical in list(self.plan.deleted):
            if self.pool(logical) not in now.pools:
                del self.plan.deleted[logical]
        self.coverage = [(time.monotonic(), self._covering())]
        self.reborn.clear()
        self.hurried = self.deposed = False
        self.known_pools = {
            name: pool for name, pool in now.pools.items() if name.startswith(f"{self.tag}-")
        }
        for index, monitor in enumerate(self.monitors):
            with monitor._lock:
                self.seen_losses[index] = len(monitor.losses)

    def play(self, steps: Iterator[Step], budget: int) -> None:
        """Do and judge up to `budget` steps (kept in `done`). Raises `Failure`."""
        self.settle(-1, Step("start"))
        for step in steps:
            if len(self.done) >= budget:
                break
            if not self.plan.applicable(step):
                continue
            self.done.append(step)
            self.do(step)
            log.info("%s %3d. %s", self.tag, len(self.done), step)
            if step.hurry is not None:
                self.hurried = True
                time.sleep(step.hurry)
            else:
                self._judge_step(step)
        if self.hurried and self.done:
            self._judge_step(self.done[-1])
        refused = self.replicas.refused()
        if refused:
            found = [Violation("guardrails", line) for line in refused[:10]]
            raise Failure(len(self.done) - 1, self.done[-1], found, self.replicas.logs())

    def _judge_step(self, step: Step) -> None:
        self.settle_times.append(self.settle(len(self.done) - 1, step))
        log.info("%s      settled in %.1fs", self.tag, self.settle_times[-1])

    def close(self) -> None:
        for monitor in self.monitors:
            monitor.stop()
        self.replicas.cleanup()
        if self.partition is not None:
            self.partition.heal()
            self.partition.close()
        for logical in self.plan.nodes:
            with contextlib.suppress(client.ApiException):
                self.env.core.delete_node(self.node(logical))
        for namespace in self.namespaces.values():
            with contextlib.suppress(client.ApiException):
                self.env.core.delete_namespace(namespace)
        # The episode's pools are test debris now: nobody is left to release their finalizer.
        for pool in list_pools(self.env.api):
            name = pool["metadata"]["name"]
            if name.startswith(f"{self.tag}-"):
                try:
                    self.env.custom.patch_cluster_custom_object(
                        GROUP,
                        VERSION,
                        PLURAL,
                        name,
                        {"metadata": {"finalizers": None}},
                        _content_type=MERGE,
                    )
                    self.env.custom.delete_cluster_custom_object(GROUP, VERSION, PLURAL, name)
                except client.ApiException:
                    pass


@dataclass
class Finding:
    """A failure, shrunk: the seed it came from and the shortest sequence that still fails."""

    seed: int
    first: Failure
    steps: list[Step]
    minimal: list[Step]
    last: Failure | None  # the minimal sequence's failure; None when it did not reproduce
    replays: int  # 0: not shrunk, an earlier finding already broke the same invariants

    def describe(self) -> str:
        lines = [
            f"seed {self.seed}: {self.first.describe()}",
            f"failing sequence: {len(self.steps)} steps; shortest found after "
            f"{self.replays} replays: {len(self.minimal)} steps"
            + ("" if self.last or not self.replays else " (did NOT reproduce on replay: a race)")
            + ("" if self.replays else " (not shrunk: same invariants as an earlier finding)"),
        ]
        lines += [f"  {i + 1:>3}. {step}" for i, step in enumerate(self.minimal)]
        lines.append("as Python: [" + ", ".join(repr(s) for s in self.minimal) + "]")
        if self.last is not None:
            lines.append(f"minimal failure: {self.last.describe()}")
        lines.append(f"operator logs of the first failure:\n{self.first.logs}")
        return "\n".join(lines)


@dataclass
class Report:
    seed: int
    steps: int = 0
    episodes: int = 0
    seconds: float = 0.0  # playing, shrinking excluded
    settle_times: list[float] = field(default_factory=list)
    actions: Counter[str] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)

    @property
    def per_minute(self) -> float:
        return 60 * self.steps / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        times = sorted(self.settle_times) or [0.0]
        faults = sum(self.actions[a] for a in FAULTS)
        return (
            f"seed {self.seed}: {self.steps} steps in {self.episodes} episodes, "
            f"{self.per_minute:.1f} steps/min, settle p50 {times[len(times) // 2]:.1f}s "
            f"p95 {times[int(len(times) * 0.95)]:.1f}s max {times[-1]:.1f}s, {faults} faults, "
            f"{len(self.findings)} failures"
        )


def generated(rng: random.Random) -> Iterator[Step]:
    """Endless random steps, each proposed from what the ones before made."""
    plan = Plan()
    while True:
        step = propose(rng, plan)
        plan.record(step)
        yield step


def play(env: Env, steps: Iterator[Step], budget: int) -> Episode:
    """One episode from scratch; its `done`, `failure` and `settle_times` tell what happened."""
    episode = Episode(env)
    try:
        episode.start()
        episode.play(steps, budget)
    except Failure as failure:
        log.warning("%s failed %s", episode.tag, failure.describe())
        episode.failure = failure
    finally:
        episode.close()
    return episode


def replay(env: Env, steps: list[Step]) -> Episode:
    return play(env, iter(steps), len(steps))


def shrink(env: Env, steps: list[Step], failure: Failure, seconds: float) -> Finding:
    """Cut chunks of steps away while the replay still breaks one of the same invariants."""
    deadline = time.monotonic() + seconds
    replays = 0

    def fails(candidate: list[Step]) -> Episode | None:
        """The replay's episode when it broke one of the same invariants."""
        nonlocal replays
        replays += 1
        episode = replay(env, candidate)
        found = episode.failure
        return episode if found is not None and found.invariants & failure.invariants else None

    best, last = steps, None
    for _ in range(2):  # a race may need a second try to show itself
        again = fails(best)
        if again is not None or time.monotonic() > deadline:
            break
    if again is None or again.failure is None:
        return Finding(0, failure, steps, steps, None, replays)
    best, last = again.done, again.failure
    chunk = max(1, len(best) // 2)
    while time.monotonic() < deadline:
        start, progressed = 0, False
        while start < len(best) and time.monotonic() < deadline:
            candidate = best[:start] + best[start + chunk :]
            found = fails(candidate) if candidate else None
            if found is not None and found.failure is not None:
                best, last, progressed = found.done, found.failure, True
            else:
                start += chunk
        if chunk == 1 and not progressed:
            break
        chunk = max(1, chunk // 2)
    return Finding(0, failure, steps, best, last, replays)


def run(
    env: Env,
    seed: int,
    steps: int,
    *,
    episode_steps: int = 40,
    shrink_seconds: float = 300,
    keep_going: bool = False,
    minutes: float = float("inf"),
) -> Report:
    """`steps` random steps from `seed`, in episodes; stops at the first failure unless
    `keep_going`, and shrinks the first failure of each invariant."""
    rng = random.Random(seed)
    report = Report(seed)
    shrunk: set[str] = set()
    deadline = time.monotonic() + 60 * minutes
    while report.steps < steps and time.monotonic() < deadline:
        episode_seed = rng.randrange(2**32)
        started = time.monotonic()
        episode = play(
            env, generated(random.Random(episode_seed)), min(episode_steps, steps - report.steps)
        )
        report.seconds += time.monotonic() - started
        report.episodes += 1
        report.steps += len(episode.done)
        report.settle_times += episode.settle_times
        report.actions.update(step.action for step in episode.done)
        failure = episode.failure
        if failure is None:
            continue
        if failure.invariants - shrunk and episode.done:
            shrunk |= failure.invariants
            finding = shrink(env, episode.done, failure, shrink_seconds)
        else:
            finding = Finding(0, failure, episode.done, episode.done, None, 0)
        finding.seed = episode_seed
        report.findings.append(finding)
        if not keep_going:
            break
    return report

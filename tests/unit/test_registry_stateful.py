"""Random Service and IPPool churn against a plain set-based model of the pools.

A /29, a small IPv6 range and an optional third pool that overlaps both; Services ensure,
get released and see pools edited or removed, the way the operator drives the registry;
time passes, so addresses held after release (releaseHold) are held and let go.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from itertools import combinations
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from lbipam.ipam.addresses import IP
from lbipam.ipam.pool import PoolSpec
from lbipam.ipam.registry import Registry
from lbipam.ipam.requests import Port, ServiceKey, ServiceRequest
from lbipam.ipam.reservations import Reservation
from lbipam.ipam.selectors import Selector

WEB_ONLY = Selector.from_dict({"matchLabels": {"app": "web"}})
VARIANTS: dict[str, list[dict[str, Any]]] = {
    "p4": [
        {"addresses": ("10.0.0.0/29",)},
        {"addresses": ("10.0.0.0/29",), "allow_first_last_ips": True},
        {"addresses": ("10.0.0.0/30",)},
        {"addresses": ("10.0.0.2-10.0.0.9",), "exclude": ("10.0.0.5",)},
        {"addresses": ("10.0.0.0/29",), "avoid_buggy_ips": True},
        {"addresses": ("10.0.0.0/29",), "disabled": True},
        {"addresses": ("10.0.0.9-10.0.0.1",)},
        {
            "addresses": ("10.0.0.0/29",),
            "reservations": (
                Reservation(("10.0.0.2-10.0.0.3",), "a", "s1"),
                Reservation(("10.0.0.6",), "b"),
            ),
            "per_namespace_limit": 2,
        },
        {"addresses": ("10.0.0.0/30",), "per_namespace_limit": 1},
    ],
    "p6": [
        {"addresses": ("2001:db8::1-2001:db8::6",)},
        {"addresses": ("2001:db8::/126",)},
        {"addresses": ("2001:db8::4-2001:db8::9", "10.0.0.8/30"), "priority": 5},
        {
            "addresses": ("2001:db8::1-2001:db8::6",),
            "reservations": (Reservation(("2001:db8::2",), "a"),),
            "per_namespace_limit": 1,
        },
        {"addresses": ("2001:db8::1-2001:db8::6",), "release_hold": 60.0},
    ],
    "q": [
        {"addresses": ("10.0.0.6-10.0.0.10", "2001:db8::5"), "auto_assign": False},
        {"addresses": ("10.0.1.0/31",), "priority": 1, "service_selector": WEB_ONLY},
        {"addresses": ("10.0.0.6-10.0.0.10", "2001:db8::5"), "release_hold": 30.0},
    ],
}
KEYS = [ServiceKey(ns, name) for ns in ("a", "b") for name in ("s0", "s1", "s2")]
PORTS = [Port(80, "TCP"), Port(443, "TCP"), Port(53, "UDP")]
FAMILY_CHOICES = [
    ((4,), "SingleStack"),
    ((6,), "SingleStack"),
    ((4, 6), "RequireDualStack"),
    ((6, 4), "PreferDualStack"),
    ((4,), "PreferDualStack"),
]

requests = st.builds(
    lambda key, created, sharing, consent, ports, families, static, pools, labels: ServiceRequest(
        key=key,
        created=f"2026-01-01T00:00:0{created}Z",
        labels=labels,
        pools=pools,
        requested_ips=static,
        sharing_key=sharing,
        share_with=consent,
        ports=frozenset(ports),
        families=families[0],
        family_policy=families[1],
    ),
    st.sampled_from(KEYS),
    st.integers(0, 2),
    st.sampled_from([None, "k"]),
    st.sampled_from([frozenset(), frozenset({"a"}), frozenset({"b"}), frozenset({"*"})]),
    st.sets(st.sampled_from(PORTS), max_size=2),
    st.sampled_from(FAMILY_CHOICES),
    st.sampled_from([(), ("10.0.0.3",), ("10.0.0.9",), ("2001:db8::2",), ("10.0.1.0",)]),
    st.sampled_from([(), ("p4",), ("q",), ("p6", "q")]),
    st.sampled_from([{}, {"app": "web"}]),
)


def consents(request: ServiceRequest, namespace: str) -> bool:
    """Whether the Service agreed to share with one of the namespace, the plain way."""
    return "*" in request.share_with or namespace in request.share_with


def expand(entry: str, skip_ends: bool = False) -> set[IP]:
    """Every address of one entry, the slow obvious way."""
    if "/" in entry:
        network = ipaddress.ip_network(entry)
        every = list(network)
        if skip_ends and network.version == 4 and len(every) >= 4:
            every = every[1:-1]
        return {IP(network.version, int(a)) for a in every}
    first_text, _, last_text = entry.partition("-")
    first = ipaddress.ip_address(first_text)
    last = ipaddress.ip_address(last_text or first_text)
    if int(last) < int(first):
        raise ValueError(entry)
    return {IP(first.version, v) for v in range(int(first), int(last) + 1)}


def members(spec: PoolSpec) -> tuple[set[IP], set[IP]] | None:
    """What a valid spec hands out and what it covers (holders keep); None when invalid."""
    skip = not spec.allow_first_last_ips
    try:
        covered = set().union(*map(expand, spec.addresses))
        chosen = set().union(*(expand(entry, skip) for entry in spec.addresses))
    except ValueError:
        return None
    excluded = set().union(*map(expand, spec.exclude))
    covered -= excluded
    chosen -= excluded
    if spec.avoid_buggy_ips:
        chosen = {ip for ip in chosen if ip.family == 6 or ip.value % 256 not in (0, 255)}
    return chosen, covered


def every_address() -> list[str]:
    """Every address any variant of any pool covers: where a hold may be, even once its pool
    is gone."""
    found: set[IP] = set()
    for variants in VARIANTS.values():
        for fields in variants:
            spec = members(PoolSpec(name="any", **fields))
            found |= spec[1] if spec is not None else set()
    text = {4: ipaddress.IPv4Address, 6: ipaddress.IPv6Address}
    return sorted(str(text[ip.family](ip.value)) for ip in found)


EVERY_ADDRESS = every_address()


class RegistryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.registry = Registry()
        self.specs: dict[str, PoolSpec] = {}
        self.last_valid: dict[str, PoolSpec] = {}
        self.model: dict[str, set[IP]] = {}  # what each pool hands out
        self.covered: dict[str, set[IP]] = {}  # what each pool lets its holders keep
        self.status: dict[ServiceKey, tuple[str, ...]] = {}
        self.requests: dict[ServiceKey, ServiceRequest] = {}
        self.now = 1_800_000_000.0

    def holdings(self) -> dict[ServiceKey, tuple[str, ...]]:
        return {key: self.registry.held_by(key) for key in KEYS if self.registry.held_by(key)}

    def holds(self) -> dict[str, tuple[ServiceKey, float]]:
        """Addresses held after release: for whom, since when."""
        return {a: hold for a in EVERY_ADDRESS if (hold := self.registry.hold_of(a)) is not None}

    @staticmethod
    def ip(text: str) -> IP:
        parsed = ipaddress.ip_address(text)
        return IP(parsed.version, int(parsed))

    def in_some_pool(self, text: str) -> bool:
        return any(self.ip(text) in pool for pool in self.covered.values())

    def change_pools(self, name: str, spec: PoolSpec | None) -> None:
        before = self.holdings()
        if spec is None:
            change = self.registry.remove_pool(name)
            self.specs.pop(name, None)
            self.last_valid.pop(name, None)
            self.model.pop(name, None)
            self.covered.pop(name, None)
        else:
            change = self.registry.apply_pool(spec)
            self.specs[name] = spec
            addresses = members(spec)
            if addresses is not None:
                self.last_valid[name] = spec
                self.model[name], self.covered[name] = addresses
            else:
                self.model.setdefault(name, set())
                self.covered.setdefault(name, set())
        after = self.holdings()
        lost = {k: set(held) - set(after.get(k, ())) for k, held in before.items()}
        assert all(not self.in_some_pool(a) for gone in lost.values() for a in gone)
        assert all(set(after.get(k, ())) <= set(held) for k, held in before.items())
        assert change.revoked == tuple(sorted(k for k, gone in lost.items() if gone))
        for key in change.moving:  # they keep an address none of the pools they name covers
            named = [self.covered[n] for n in self.requests[key].pools if n in self.covered]
            assert any(not any(self.ip(a) in c for c in named) for a in after[key])

    @rule(name=st.sampled_from(sorted(VARIANTS)), variant=st.integers(0, 8))
    def edit_pool(self, name: str, variant: int) -> None:
        fields = VARIANTS[name][variant % len(VARIANTS[name])]
        created = f"2026-01-01T00:00:0{sorted(VARIANTS).index(name)}Z"
        self.change_pools(name, PoolSpec(name=name, created=created, **fields))

    @rule(name=st.sampled_from(sorted(VARIANTS)))
    def remove_pool(self, name: str) -> None:
        self.change_pools(name, None)

    def reserved_for_others(self, key: ServiceKey, text: str) -> list[str]:
        """The pools that set the address aside for another tenant."""
        ip = self.ip(text)
        return [
            name
            for name, spec in self.specs.items()
            if name in self.last_valid and spec == self.last_valid[name] and ip in self.model[name]
            for r in spec.reservations
            if ip in set().union(*map(expand, r.addresses)) and not r.matches(key)
        ]

    def namespace_counts(self, namespace: str) -> dict[str, int]:
        """Per pool with a valid perNamespaceLimit: the addresses the namespace holds of it."""
        held = {a for k, h in self.holdings().items() if k.namespace == namespace for a in h}
        return {
            name: sum(1 for a in held if self.ip(a) in self.covered[name])
            for name, spec in self.specs.items()
            if spec.per_namespace_limit is not None and spec == self.last_valid.get(name)
        }

    @rule(request=requests)
    def ensure(self, request: ServiceRequest) -> None:
        request = replace(request, held=self.status.get(request.key, ()))
        before = self.namespace_counts(request.key.namespace)
        holds = self.holds()
        outcome = self.registry.ensure(request)
        for address in outcome.addresses:  # nobody gets an address held for another
            assert holds.get(address, (request.key,))[0] == request.key
        assert set(outcome.kept) <= set(holds)
        # What was held for the Service after release is still its own, as an address held
        # before a reservation covered it is (docs/reference.md, Reservations).
        for address in set(outcome.allocated) - set(outcome.kept):
            assert not self.reserved_for_others(request.key, address), (request, outcome)
        # An older holder taking its address back, or a Service getting back what was held
        # for it after release, is not limited; nor is one keeping the address its status
        # shows (revoked with its pool, back in a pool made again before its status was
        # written): the limit bounds what is handed out, as lowering it takes nothing away.
        if not outcome.displaced and not outcome.kept:
            for name, count in self.namespace_counts(request.key.namespace).items():
                if not any(self.ip(a) in self.covered[name] for a in outcome.allocated):
                    continue
                limit = self.specs[name].per_namespace_limit or 0
                assert count <= max(limit, before.get(name, 0)), (name, request, outcome)
        self.status[request.key] = outcome.addresses
        self.requests[request.key] = request
        assert self.registry.held_by(request.key) == outcome.addresses
        assert len(outcome.pools) == len(outcome.addresses)
        rerun = self.registry.ensure(replace(request, held=outcome.addresses))
        assert (rerun.addresses, rerun.reason, rerun.message) == (
            outcome.addresses,
            outcome.reason,
            outcome.message,
        )
        assert (rerun.allocated, rerun.released, rerun.displaced) == ((), (), ())

    @rule(key=st.sampled_from(KEYS))
    def release(self, key: ServiceKey) -> None:
        held = set(self.registry.held_by(key))
        freed = set(self.registry.release(key, self.now))
        self.status.pop(key, None)
        still_held = {a for other in self.holdings().values() for a in other}
        kept = {a for a, (k, _) in self.holds().items() if k == key and a in held}
        assert freed == held - still_held - kept
        assert self.registry.held_by(key) == ()

    @rule(seconds=st.sampled_from([1.0, 29.0, 31.0, 61.0]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds
        before = self.holds()
        ended = self.registry.end_holds(self.now)
        after = self.holds()
        assert set(ended) == {k for a, (k, _) in before.items() if a not in after}
        assert set(after) <= set(before)

    @invariant()
    def no_address_is_held_by_two_services_that_may_not_share(self) -> None:
        owners: dict[str, list[ServiceKey]] = {}
        for key, held in self.holdings().items():
            for address in held:
                owners.setdefault(address, []).append(key)
        for keys in owners.values():
            for a, b in combinations((self.requests[k] for k in keys), 2):
                assert a.sharing_key is not None and a.sharing_key == b.sharing_key
                assert not a.ports & b.ports
                if a.key.namespace != b.key.namespace:
                    assert consents(a, b.key.namespace) and consents(b, a.key.namespace)

    @invariant()
    def every_held_address_lies_in_a_pool(self) -> None:
        assert all(self.in_some_pool(a) for held in self.holdings().values() for a in held)

    @invariant()
    def counts_add_up(self) -> None:
        held = {
            IP(ip.version, int(ip))
            for addresses in [*self.holdings().values(), tuple(self.holds())]
            for ip in map(ipaddress.ip_address, addresses)
        }
        for name, pool in self.model.items():
            status = self.registry.pool_summary(name)
            assert status.total == len(pool)
            assert status.allocated == len(held & pool)
            assert status.allocated + status.reserved + status.available == status.total
            for counts in status.counts:
                assert counts.allocated + counts.reserved + counts.available == counts.total
                assert counts.total == sum(1 for ip in pool if ip.family == counts.family)

    @invariant()
    def the_registry_indexes_agree_with_each_other_and_the_pools(self) -> None:
        self.registry.check()

    @invariant()
    def a_fresh_registry_rebuilt_from_the_holders_agrees(self) -> None:
        fresh = Registry()
        # An invalid spec keeps its last good addresses, so replay that one first.
        for spec in [*self.last_valid.values(), *self.specs.values()]:
            fresh.apply_pool(spec)
        holdings = self.holdings()
        losers = fresh.rebuild(replace(self.requests[k], held=h) for k, h in holdings.items())
        assert losers == ()
        fresh.restore_holds((a, k, since) for a, (k, since) in self.holds().items())
        assert {k: fresh.held_by(k) for k in KEYS if fresh.held_by(k)} == holdings
        for name in self.specs:
            assert fresh.pool_summary(name) == self.registry.pool_summary(name)


RegistryMachine.TestCase.settings = settings(
    max_examples=600,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRegistryMachine = RegistryMachine.TestCase

"""Every pool by name: priority order, conflicts between pools, reserved ranges, pool states."""

from __future__ import annotations

import enum
import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from .addresses import FAMILIES, IP, Interval, normalize, parse_entry
from .pool import FamilyCounts, Pool, PoolSpec


class PoolState(enum.StrEnum):
    """Whether a pool hands out new addresses, and if not, why (the pool's Ready reason)."""

    READY = "Ready"
    INVALID_SPEC = "InvalidSpec"
    CONFLICT = "Conflict"
    DISABLED = "Disabled"
    PROTECTING = "Protecting"


class RangeKind(enum.StrEnum):
    """Where addresses the cluster uses itself come from."""

    SERVICE_CIDR = "ServiceCIDR"  # the API server hands them out as ClusterIPs
    NODE = "Node"  # a Node's InternalIPs and ExternalIPs


class ClusterRange(NamedTuple):
    """Addresses the cluster uses itself, by where they come from: never handed out here."""

    kind: RangeKind
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


# One range of a ClusterRange: (source, family, interval).
ReservedEntry = tuple[ClusterRange, int, Interval]


@dataclass(frozen=True)
class PoolSummary:
    name: str
    counts: tuple[FamilyCounts, ...]
    total: int
    allocated: int
    available: int
    state: PoolState
    why: str  # completes "the pool ...": why it hands out nothing new, "" when Ready
    conflict_with: str | None
    error: str | None
    reserved_overlap: tuple[ClusterRange, ...] = ()  # the cluster's own ranges it overlaps
    reserved: int = 0  # free addresses its reservations set aside (not in `available`)
    # Namespaces holding more than its perNamespaceLimit (lowered since), and how many.
    over_limit: tuple[tuple[str, int], ...] = ()
    # Of the allocated addresses, those held after release, and when the first of those
    # holds ends (seconds since the epoch).
    held: int = 0
    held_until: float | None = None

    def overlapping(self, kind: RangeKind) -> tuple[str, ...]:
        """The names of the cluster's own ranges of `kind` this pool overlaps."""
        return tuple(source.name for source in self.reserved_overlap if source.kind == kind)

    @property
    def exhausted(self) -> bool:
        return self.available == 0


class Catalog:
    """The pools, and what follows from them alone: order, conflicts, reserved ranges, states."""

    def __init__(self) -> None:
        self._pools: dict[str, Pool] = {}
        # Pool -> the oldest pool it overlaps; such a pool hands out nothing new.
        self._conflicts: dict[str, str] = {}
        # _pools by (priority desc, name), or None after any pool change.
        self._ordered: list[Pool] | None = None
        # Ranges the cluster uses itself (ServiceCIDRs, Node addresses): never handed out here.
        self._reserved: dict[ClusterRange, tuple[tuple[int, Interval], ...]] = {}
        # Pool name -> (the pool object it was computed for, the reserved ranges it overlaps).
        self._overlaps: dict[str, tuple[Pool, tuple[ClusterRange, ...]]] = {}
        # Grows with every change of the pools.
        self.changes = 0

    def pool(self, name: str) -> Pool:
        return self._pools[name]

    def find(self, name: str) -> Pool | None:
        return self._pools.get(name)

    def put(self, spec: PoolSpec, taken: Iterable[IP]) -> None:
        """Build the pool from its spec with `taken` addresses used; a bad spec is its error."""
        previous = self._pools.get(spec.name)
        self._pools[spec.name] = Pool.build(spec, taken, previous, self._reserved_ranges())

    def remove(self, name: str) -> Pool | None:
        self._overlaps.pop(name, None)
        return self._pools.pop(name, None)

    def reserve(self, kind: RangeKind, ranges: Mapping[str, Sequence[str]]) -> bool:
        """Record every range of one kind the cluster uses itself; whether they changed.

        The pools learn them at their next build: call `rebuild` with the taken addresses.
        """
        reserved = {key: value for key, value in self._reserved.items() if key.kind != kind}
        for name, texts in ranges.items():
            entries = []
            for text in texts:
                try:
                    entries.append(parse_entry(text))
                except ValueError:
                    continue  # the API server validated it; an odd one is not ours to judge
            reserved[ClusterRange(kind, name)] = tuple(entries)
        if reserved == self._reserved:
            return False
        self._reserved = reserved
        self._overlaps.clear()
        return True

    def reserved_entries(self) -> set[ReservedEntry]:
        return {
            (source, family, interval)
            for source, entries in self._reserved.items()
            for family, interval in entries
        }

    def rebuild(self, taken: Sequence[IP]) -> None:
        """Every pool again from its spec, with `taken` addresses used."""
        for name, pool in list(self._pools.items()):
            self._pools[name] = Pool.build(pool.spec, taken, pool, self._reserved_ranges())

    def forget_holdings(self) -> None:
        """Every pool with all its addresses free, its ranges and error kept."""
        self._pools = {name: Pool(p.spec, p.spans, (), p.error) for name, p in self._pools.items()}
        self._ordered = None

    def _reserved_ranges(self) -> dict[int, list[Interval]]:
        per_family: dict[int, list[Interval]] = {}
        for entries in self._reserved.values():
            for family, interval in entries:
                per_family.setdefault(family, []).append(interval)
        return {family: normalize(intervals) for family, intervals in per_family.items()}

    def changed(self) -> tuple[str, ...]:
        """After any pool change: the pools whose conflict changed."""
        self._ordered = None
        self.changes += 1
        before = self._conflicts
        self._conflicts = self._find_conflicts()
        changed = {
            n
            for n in before.keys() | self._conflicts.keys()
            if before.get(n) != self._conflicts.get(n)
        }
        return tuple(sorted(changed & self._pools.keys()))

    def summary(self, name: str) -> PoolSummary:
        pool = self._pools[name]
        counts = pool.counts()
        state, why = self.state(pool)
        return PoolSummary(
            name=name,
            counts=counts,
            total=sum(c.total for c in counts),
            allocated=sum(c.allocated for c in counts),
            available=sum(c.available for c in counts),
            reserved=sum(c.reserved for c in counts),
            state=state,
            why=why,
            conflict_with=self._conflicts.get(name),
            error=pool.error,
            reserved_overlap=self._overlap(pool),
        )

    def _overlap(self, pool: Pool) -> tuple[ClusterRange, ...]:
        """Cached per pool object: a thousand Nodes would cost every status flush otherwise."""
        cached = self._overlaps.get(pool.name)
        if cached is not None and cached[0] is pool:
            return cached[1]
        overlap = tuple(
            source
            for source, entries in sorted(self._reserved.items())
            if any(pool.overlaps(family, interval) for family, interval in entries)
        )
        self._overlaps[pool.name] = (pool, overlap)
        return overlap

    def state(self, pool: Pool) -> tuple[PoolState, str]:
        """The one place that says whether a pool may hand out anything new."""
        if pool.error is not None:
            return PoolState.INVALID_SPEC, f"has an invalid spec: {pool.error}"
        if pool.name in self._conflicts:
            return PoolState.CONFLICT, f'overlaps the older pool "{self._conflicts[pool.name]}"'
        if pool.spec.disabled:
            return PoolState.DISABLED, "is disabled or being deleted"
        if not pool.spec.protected:
            return PoolState.PROTECTING, "is not yet protected against deletion while in use"
        return PoolState.READY, ""

    def names(self) -> list[str]:
        return sorted(self._pools)

    def has(self, name: str) -> bool:
        return name in self._pools

    def by_priority(self) -> list[Pool]:
        if self._ordered is None:
            self._ordered = sorted(self._pools.values(), key=lambda p: (-p.spec.priority, p.name))
        return self._ordered

    def containing(self, ip: IP) -> list[Pool]:
        return [pool for pool in self._pools.values() if pool.contains(ip)]

    def oldest_containing(self, ip: IP) -> Pool | None:
        """The oldest pool containing the address: the one not in conflict."""
        containing = self.containing(ip)
        return min(containing, key=lambda p: p.spec.seniority) if containing else None

    def existing(self, names: Iterable[str]) -> list[str]:
        return [name for name in names if name in self._pools]

    def outside_named(self, names: Iterable[str], ip: IP) -> bool:
        """Whether `names` name pools (that exist) and none of them covers ``ip``."""
        named = [self._pools[name] for name in names if name in self._pools]
        return bool(named) and not any(pool.contains(ip) for pool in named)

    def _find_conflicts(self) -> dict[str, str]:
        """Each pool overlapping an older one -> the oldest such: one sweep over sorted ranges.

        Comparing every pair on every pool change made thousands of pools cost minutes.
        """
        by_age = sorted(self._pools.values(), key=lambda p: p.spec.seniority)
        rank = {pool.name: index for index, pool in enumerate(by_age)}
        oldest: dict[int, int] = {}
        for family in FAMILIES:
            spans = sorted(
                (start, end, rank[pool.name])
                for pool in by_age
                for start, end in pool.ranges.get(family, ())
            )
            active: list[tuple[int, int]] = []  # heap of (end, rank) of spans still open
            for start, end, me in spans:
                while active and active[0][0] < start:
                    heapq.heappop(active)
                for _, other in active:
                    if other != me:
                        young, old = max(me, other), min(me, other)
                        oldest[young] = min(old, oldest.get(young, old))
                heapq.heappush(active, (end, me))
        return {by_age[young].name: by_age[old].name for young, old in oldest.items()}


def pool_list(names: Iterable[str]) -> str:
    """`pool "a"` or `pools "a", "b"`, for messages."""
    quoted = [f'"{name}"' for name in names]
    return ("pool " if len(quoted) == 1 else "pools ") + ", ".join(quoted)

"""One IPPool: its usable addresses and a free-interval allocator per family."""

from __future__ import annotations

import enum
import random
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import accumulate

from .addresses import (
    FAMILIES,
    IP,
    Interval,
    PoolSpecError,
    normalize,
    parse_entries,
    size,
    subtract,
    without_buggy_v4,
)
from .requests import ServiceKey
from .reservations import Reservation, Reservations, SetAside, set_aside
from .selectors import Selector


class FreeIntervals:
    """Free addresses of one family as sorted, disjoint, non-touching inclusive intervals.

    Stored as chunked parallel lists of starts and ends (a one-level B-tree), so every operation
    is two bisects plus a memmove of at most ``2 * _load`` items, whatever the pool size.
    """

    __slots__ = ("_ends", "_firsts", "_free", "_starts")
    # Intervals per chunk: list insert/delete is a memmove of the chunk only, so a fragmented
    # /64 with 100k holders costs about what a /24 does, while bisect stays two short searches.
    _load = 512

    def __init__(self, intervals: Iterable[Interval] = ()) -> None:
        flat = list(intervals)
        load = self._load
        chunks = [flat[i : i + load] for i in range(0, len(flat), load)]
        self._starts = [[first for first, _ in chunk] for chunk in chunks]
        self._ends = [[last for _, last in chunk] for chunk in chunks]
        self._firsts = [starts[0] for starts in self._starts]
        self._free = size(flat)

    @property
    def free(self) -> int:
        return self._free

    def __iter__(self) -> Iterator[Interval]:
        for starts, ends in zip(self._starts, self._ends, strict=True):
            yield from zip(starts, ends, strict=True)

    def lowest(self) -> int | None:
        return self._firsts[0] if self._firsts else None

    def __contains__(self, value: int) -> bool:
        chunk, index = self._find(value)
        return chunk >= 0 and value <= self._ends[chunk][index]

    def take(self, value: int) -> bool:
        """Reserve ``value``; False when it is not free."""
        chunk, index = self._find(value)
        if chunk < 0:
            return False
        starts, ends = self._starts[chunk], self._ends[chunk]
        first, last = starts[index], ends[index]
        if value > last:
            return False
        if first == last:
            self._remove(chunk, index)
        elif value == first:
            starts[index] = value + 1
            if index == 0:
                self._firsts[chunk] = value + 1
        elif value == last:
            ends[index] = value - 1
        else:
            ends[index] = value - 1
            self._insert(chunk, index + 1, value + 1, last)
        self._free -= 1
        return True

    def give_back(self, value: int) -> None:
        """Free ``value`` again, merging with touching intervals."""
        chunk, index = self._find(value)
        if chunk >= 0 and value <= self._ends[chunk][index]:
            raise ValueError(f"{value} is already free")
        if chunk < 0:
            after = (0, 0)
        elif index + 1 < len(self._starts[chunk]):
            after = (chunk, index + 1)
        else:
            after = (chunk + 1, 0)
        joins_before = chunk >= 0 and self._ends[chunk][index] == value - 1
        joins_after = after[0] < len(self._starts) and self._starts[after[0]][after[1]] == value + 1
        if joins_before and joins_after:
            self._ends[chunk][index] = self._ends[after[0]][after[1]]
            self._remove(*after)
        elif joins_before:
            self._ends[chunk][index] = value
        elif joins_after:
            self._starts[after[0]][after[1]] = value
            if after[1] == 0:
                self._firsts[after[0]] = value
        else:
            self._insert(max(chunk, 0), index + 1, value, value)
        self._free += 1

    def _find(self, value: int) -> tuple[int, int]:
        """Chunk and index of the last interval starting at or below ``value``; -1s if none."""
        chunk = bisect_right(self._firsts, value) - 1
        if chunk < 0:
            return -1, -1
        return chunk, bisect_right(self._starts[chunk], value) - 1

    def _insert(self, chunk: int, index: int, first: int, last: int) -> None:
        if not self._starts:
            self._starts.append([first])
            self._ends.append([last])
            self._firsts.append(first)
            return
        starts, ends = self._starts[chunk], self._ends[chunk]
        starts.insert(index, first)
        ends.insert(index, last)
        if index == 0:
            self._firsts[chunk] = first
        load = self._load
        if len(starts) > 2 * load:
            self._starts.insert(chunk + 1, starts[load:])
            self._ends.insert(chunk + 1, ends[load:])
            self._firsts.insert(chunk + 1, starts[load])
            del starts[load:], ends[load:]

    def _remove(self, chunk: int, index: int) -> None:
        starts = self._starts[chunk]
        del starts[index], self._ends[chunk][index]
        if not starts:
            del self._starts[chunk], self._ends[chunk], self._firsts[chunk]
        elif index == 0:
            self._firsts[chunk] = starts[0]


class CountedFreeIntervals(FreeIntervals):
    """Free intervals that also count each chunk's free addresses, to find the n-th one.

    Only Random pools pay for the counts: a count changes by one per take or give_back, and a
    chunk is recounted only when it splits, empties or merges with its neighbour.
    """

    __slots__ = ("_counts",)
    # Finding the n-th free address adds up the chunks' counts, then the sizes of one chunk's
    # intervals: smaller chunks balance the two (about 1,100 additions at 100k intervals).
    _load = 128

    def __init__(self, intervals: Iterable[Interval] = ()) -> None:
        super().__init__(intervals)
        self._counts = [self._count(chunk) for chunk in range(len(self._starts))]

    def nth(self, index: int) -> int:
        """The free address with ``index`` free addresses below it (0 <= index < free)."""
        before = list(accumulate(self._counts))
        chunk = bisect_right(before, index)
        if chunk:
            index -= before[chunk - 1]
        starts = self._starts[chunk]
        through = list(accumulate(map(int.__sub__, map((1).__add__, self._ends[chunk]), starts)))
        interval = bisect_right(through, index)
        if interval:
            index -= through[interval - 1]
        return starts[interval] + index

    def take(self, value: int) -> bool:
        chunk, chunks = bisect_right(self._firsts, value) - 1, len(self._starts)
        if not super().take(value):
            return False
        if len(self._starts) > chunks:  # the chunk split in two
            self._counts[chunk : chunk + 1] = [self._count(chunk), self._count(chunk + 1)]
        elif len(self._starts) < chunks:  # its last address went
            del self._counts[chunk]
        else:
            self._counts[chunk] -= 1
        return True

    def give_back(self, value: int) -> None:
        chunk, chunks = bisect_right(self._firsts, value) - 1, len(self._starts)
        # Merging with the next chunk's first interval moves addresses between chunks.
        crossing = chunk + 1 < chunks and self._firsts[chunk + 1] == value + 1
        super().give_back(value)
        chunk = max(chunk, 0)
        if len(self._starts) != chunks or crossing:
            # Recount this chunk and the next in place of what they were (one more after a
            # split, one fewer after a merge).
            end = min(chunk + 2, chunks)
            grown = end + len(self._starts) - chunks
            self._counts[chunk:end] = [self._count(c) for c in range(chunk, grown)]
        else:
            self._counts[bisect_right(self._firsts, value) - 1] += 1

    def _count(self, chunk: int) -> int:
        starts = self._starts[chunk]
        return sum(self._ends[chunk]) - sum(starts) + len(starts)


class AllocationOrder(enum.StrEnum):
    """Which free address a pool hands out next (the IPPool's spec.allocationOrder)."""

    LOWEST = "Lowest"
    RANDOM = "Random"

    @classmethod
    def parse(cls, raw: object) -> AllocationOrder:
        """The order a spec names, Lowest when it names none; ValueError says what is wrong."""
        if raw is None:
            return cls.LOWEST
        for order in cls:
            if raw == order.value:
                return order
        raise ValueError(f"allocationOrder {raw!r} is not one of Lowest, Random")


@dataclass(frozen=True)
class PoolSpec:
    """An IPPool's spec, lifted out of the Kubernetes object (address text left raw)."""

    name: str
    addresses: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    avoid_buggy_ips: bool = False
    allow_first_last_ips: bool = False
    auto_assign: bool = True
    disabled: bool = False
    priority: int = 0
    allocation_order: AllocationOrder = AllocationOrder.LOWEST
    # Seconds an address a Service let go stays held for its namespace/name (releaseHold).
    release_hold: float = 0.0
    service_selector: Selector | None = None
    namespace_selector: Selector | None = None
    reservations: tuple[Reservation, ...] = ()
    # The most addresses one namespace may hold from the pool; None: no limit.
    per_namespace_limit: int | None = None
    created: str = ""
    # False until the pool's deletion is guarded: until then it hands out nothing new, so a
    # pool that holds addresses can never vanish under its holders.
    protected: bool = True
    # Why the spec could not be read (a bad selector, say); the pool then hands out nothing.
    error: str | None = None

    @property
    def seniority(self) -> tuple[str, str]:
        """Older sorts first; the younger of two overlapping pools is the conflicting one."""
        return (self.created, self.name)


@dataclass(frozen=True)
class FamilyCounts:
    family: int
    total: int
    allocated: int
    available: int
    reserved: int = 0  # set aside by reservations and free: total = allocated+reserved+available


@dataclass(frozen=True)
class PoolRanges:
    """Per family: what the pool hands out, and what it covers (holders there stay put).

    ``covered`` adds what the pool keeps but never hands out: IPv4 network and broadcast
    addresses and, with avoidBuggyIPs, x.x.x.0/255. A Service holding one keeps it.
    """

    usable: Mapping[int, list[Interval]]
    covered: Mapping[int, list[Interval]]
    reservations: tuple[SetAside, ...] = ()


Reserved = Mapping[int, list[Interval]]


def pool_ranges(spec: PoolSpec, reserved: Reserved) -> PoolRanges:
    """The pool's ranges from its spec, never handing out `reserved`; PoolSpecError says why."""
    if spec.error is not None:
        raise PoolSpecError(spec.error)
    listed = parse_entries("addresses", spec.addresses, required=True)
    excluded = parse_entries("exclude", spec.exclude, required=False)
    covered = {family: subtract(listed[family], excluded.get(family, [])) for family in listed}
    if spec.allow_first_last_ips:
        usable = dict(covered)
    else:
        trimmed = parse_entries("addresses", spec.addresses, required=True, skip_v4_ends=True)
        usable = {f: subtract(trimmed[f], excluded.get(f, [])) for f in trimmed}
    if spec.avoid_buggy_ips and 4 in usable:
        usable[4] = without_buggy_v4(usable[4])
    usable = {f: subtract(usable[f], reserved.get(f, [])) for f in usable}
    return PoolRanges(usable, covered, set_aside(spec.reservations, listed, usable))


class _Spans:
    """Membership in sorted, disjoint intervals by bisection."""

    __slots__ = ("_ends", "_starts")

    def __init__(self, ranges: Mapping[int, list[Interval]]) -> None:
        self._starts = {family: [first for first, _ in r] for family, r in ranges.items()}
        self._ends = {family: [last for _, last in r] for family, r in ranges.items()}

    def __contains__(self, ip: IP) -> bool:
        starts = self._starts.get(ip.family)
        if not starts:
            return False
        index = bisect_right(starts, ip.value) - 1
        return index >= 0 and ip.value <= self._ends[ip.family][index]


_NO_RANGES = PoolRanges({}, {})
# Random order draws from the operating system's CSPRNG (what `secrets` uses): a Mersenne
# Twister's next outputs can be computed from ~300 of its 64-bit draws, i.e. from addresses
# handed out earlier, and unguessable addresses are the reason to ask for Random.
_SYSTEM_RANDOM = random.SystemRandom()
# Random order draws among all usable addresses while at least 1/_SPARSE of them are free (a
# draw costs about a fiftieth of counting down 100k free intervals). A draw then hits with odds
# over 1/16 (1/8 when the total is a power of two, as for a CIDR), so all _DRAWS miss in one
# allocation in eight at most (in 70); then it counts down.
_SPARSE = 8
_DRAWS = 32


class Pool:
    """A pool's ranges and, per family, the usable addresses of them nobody holds."""

    __slots__ = (
        "_aside",
        "_covered",
        "_free",
        "_rng",
        "_through",
        "_usable",
        "error",
        "ranges",
        "spans",
        "spec",
    )

    def __init__(
        self,
        spec: PoolSpec,
        spans: PoolRanges,
        held: Iterable[IP] = (),
        error: str | None = None,
        *,
        rng: random.Random = _SYSTEM_RANDOM,
    ) -> None:
        self.spec = spec
        self._rng = rng
        self.error = error
        self.spans = spans
        # Hand-out ranges: counted in status, compared for overlaps, allocated from.
        self.ranges = {
            family: spans.usable[family] for family in FAMILIES if spans.usable.get(family)
        }
        self._usable = _Spans(self.ranges)
        self._covered = _Spans(spans.covered)
        taken: dict[int, list[Interval]] = {family: [] for family in self.ranges}
        held = [ip for ip in held if ip in self._usable]
        for ip in held:
            taken[ip.family].append((ip.value, ip.value))
        # Set-aside addresses are counted apart and never among the free ones.
        self._aside = Reservations(spans.reservations, held)
        kind = (
            CountedFreeIntervals
            if spec.allocation_order is AllocationOrder.RANDOM
            else FreeIntervals
        )
        self._free = {
            family: kind(subtract(subtract(r, self._aside.union(family)), normalize(taken[family])))
            for family, r in self.ranges.items()
        }
        # Per family, how many usable addresses lie in each range and those before it.
        self._through = {
            family: list(accumulate(last - first + 1 for first, last in r))
            for family, r in self.ranges.items()
        }

    @classmethod
    def build(
        cls,
        spec: PoolSpec,
        held: Iterable[IP],
        previous: Pool | None = None,
        reserved: Reserved | None = None,
        rng: random.Random = _SYSTEM_RANDOM,
    ) -> Pool:
        """A pool from its spec; an invalid spec keeps the previous ranges so holders stay put."""
        try:
            return cls(spec, pool_ranges(spec, reserved or {}), held, rng=rng)
        except PoolSpecError as error:
            spans = previous.spans if previous else _NO_RANGES
            return cls(spec, spans, held, error=str(error), rng=rng)

    @property
    def name(self) -> str:
        return self.spec.name

    def accepts(self, labels: Mapping[str, str], namespace_labels: Mapping[str, str]) -> bool:
        service, namespace = self.spec.service_selector, self.spec.namespace_selector
        return (service is None or service.matches(labels)) and (
            namespace is None or namespace.matches(namespace_labels)
        )

    def contains(self, ip: IP) -> bool:
        """Whether a holder of ``ip`` may keep it because of this pool."""
        return ip in self._covered

    def overlaps(self, family: int, interval: Interval) -> bool:
        """Whether any address the pool covers lies in `interval`."""
        first, last = interval
        return any(a <= last and first <= b for a, b in self.spans.covered.get(family, ()))

    def offers(self, ip: IP) -> bool:
        """Whether this pool may hand ``ip`` out."""
        return ip in self._usable

    def free_address(self, family: int) -> IP | None:
        """The address of this family to hand out next, in the pool's allocation order."""
        free = self._free.get(family)
        if isinstance(free, CountedFreeIntervals):
            return IP(family, self._random_free(family, free)) if free.free else None
        value = free.lowest() if free is not None else None
        return None if value is None else IP(family, value)

    # The registry's name for free_address until its _allocate is renamed to call that.
    def _random_free(self, family: int, free: CountedFreeIntervals) -> int:
        """A free address, each equally likely: drawn among the usable ones until one is free
        (two bisections a draw) while enough are free, else found by counting down."""
        through = self._through[family]
        total = through[-1]
        if _SPARSE * free.free >= total:
            # randrange(2**64) would draw 65 bits and throw half away: draw just enough bits.
            bits = (total - 1).bit_length()
            for _ in range(_DRAWS):
                index = self._rng.getrandbits(bits)
                if index < total:
                    which = bisect_right(through, index)
                    value = self.ranges[family][which][1] - (through[which] - 1 - index)
                    if value in free:
                        return value
        return free.nth(self._rng.randrange(free.free))

    def take(self, ip: IP) -> None:
        """Count a held address as used; addresses the pool only covers are not counted."""
        free = self._free.get(ip.family)
        if free is not None and not (ip in self._usable and self._aside.take(ip)):
            free.take(ip.value)

    def give_back(self, ip: IP) -> None:
        if ip in self._usable and not self._aside.give_back(ip):
            self._free[ip.family].give_back(ip.value)

    def reservation(self, ip: IP) -> SetAside | None:
        """The reservation that sets the address aside, if any."""
        return self._aside.entry(ip) if ip in self._usable else None

    def reserved_for(self, key: ServiceKey, family: int) -> IP | None:
        """The lowest free address of the family set aside for the Service, if any."""
        return self._aside.first_for(key, family)

    def reserved_for_others(self, key: ServiceKey, family: int) -> int:
        """How many free addresses of the family are set aside for other tenants."""
        return self._aside.free_for_others(key, family)

    def counts(self) -> tuple[FamilyCounts, ...]:
        result = []
        for family, ranges in self.ranges.items():
            total, available = size(ranges), self._free[family].free
            reserved = self._aside.free(family)
            allocated = total - available - reserved
            result.append(FamilyCounts(family, total, allocated, available, reserved))
        return tuple(result)

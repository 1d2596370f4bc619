"""A pool's reservations: addresses set aside for one namespace, or one Service in it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .addresses import IP, Interval, PoolSpecError, normalize, parse_entries, size, subtract
from .requests import ServiceKey


@dataclass(frozen=True)
class Reservation:
    """One entry of an IPPool's spec.reservations (address text left raw)."""

    addresses: tuple[str, ...]
    namespace: str
    service: str | None = None

    def matches(self, key: ServiceKey) -> bool:
        return key.namespace == self.namespace and self.service in (None, key.name)

    def tenant(self) -> str:
        """Whom it is for, for messages."""
        if self.service is None:
            return f'namespace "{self.namespace}"'
        return f'Service "{self.namespace}/{self.service}"'


@dataclass(frozen=True)
class SetAside:
    """One reservation's usable addresses per family, and its place in the spec."""

    index: int
    reservation: Reservation
    ranges: Mapping[int, list[Interval]]

    def describe(self) -> str:
        return f"reservations[{self.index}] for {self.reservation.tenant()}"


def set_aside(
    reservations: Sequence[Reservation],
    listed: Mapping[int, list[Interval]],
    usable: Mapping[int, list[Interval]],
) -> tuple[SetAside, ...]:
    """Each reservation's usable addresses; PoolSpecError names an entry outside the pool's
    `listed` addresses, or two reservations sharing an address."""
    result: list[SetAside] = []
    for index, reservation in enumerate(reservations):
        field = f"reservations[{index}].addresses"
        ranges = parse_entries(field, reservation.addresses, required=True)
        for entry, text in enumerate(reservation.addresses):
            one = parse_entries(f"{field}[{entry}]", [text], required=True)
            if any(subtract(r, listed.get(family, [])) for family, r in one.items()):
                raise PoolSpecError(
                    f'{field}[{entry}] "{text}": lies outside the pool\'s addresses'
                )
        for earlier in result:
            if any(_overlap(ranges.get(f, []), r) for f, r in earlier.ranges.items()):
                raise PoolSpecError(
                    f"reservations[{index}] overlaps reservations[{earlier.index}]; "
                    "an address may be reserved for one tenant only"
                )
        kept = {f: _intersect(r, usable.get(f, [])) for f, r in ranges.items()}
        result.append(SetAside(index, reservation, {f: r for f, r in kept.items() if r}))
    return tuple(result)


def _intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    return subtract(a, subtract(a, b))


def _overlap(a: list[Interval], b: list[Interval]) -> bool:
    return bool(_intersect(a, b))


class Reservations:
    """A pool's set-aside addresses and which of them are held; few, so a set of the held ones
    is enough."""

    __slots__ = ("_entries", "_held")

    def __init__(self, entries: Sequence[SetAside], held: Iterable[IP]) -> None:
        self._entries = tuple(entries)
        self._held: set[IP] = set()
        for ip in held:
            self.take(ip)

    def union(self, family: int) -> list[Interval]:
        """Every set-aside address of the family: never handed out to anyone else."""
        return normalize(i for e in self._entries for i in e.ranges.get(family, ()))

    def entry(self, ip: IP) -> SetAside | None:
        """The reservation the address is set aside by, if any."""
        return next((e for e in self._entries if _within(ip, e.ranges)), None)

    def take(self, ip: IP) -> bool:
        """Count a set-aside address as held; False when it is not set aside."""
        if self.entry(ip) is None:
            return False
        self._held.add(ip)
        return True

    def give_back(self, ip: IP) -> bool:
        """Free a set-aside address again; False when it is not set aside."""
        if self.entry(ip) is None:
            return False
        self._held.discard(ip)
        return True

    def free(self, family: int) -> int:
        """Set-aside addresses of the family nobody holds."""
        held = sum(1 for ip in self._held if ip.family == family)
        return size(self.union(family)) - held

    def first_for(self, key: ServiceKey, family: int) -> IP | None:
        """The lowest free address set aside for the Service, if any."""
        for entry in self._entries:
            if entry.reservation.matches(key):
                ip = self._lowest_free(entry.ranges.get(family, []), family)
                if ip is not None:
                    return ip
        return None

    def free_for_others(self, key: ServiceKey, family: int) -> int:
        """Free set-aside addresses of the family that are not for the Service."""
        return sum(
            size(e.ranges.get(family, []))
            - sum(1 for ip in self._held if ip.family == family and _within(ip, e.ranges))
            for e in self._entries
            if not e.reservation.matches(key)
        )

    def _lowest_free(self, ranges: list[Interval], family: int) -> IP | None:
        for first, last in ranges:
            # Lazy, and stops after at most as many steps as addresses are held.
            for value in range(first, last + 1):
                if IP(family, value) not in self._held:
                    return IP(family, value)
        return None


def _within(ip: IP, ranges: Mapping[int, list[Interval]]) -> bool:
    return any(first <= ip.value <= last for first, last in ranges.get(ip.family, ()))

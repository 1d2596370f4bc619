"""IP address text (single, CIDR, inclusive range) to integer intervals, and interval arithmetic.

Addresses are ``(family, int)`` pairs so IPv4 and IPv6 never compare equal by accident;
intervals are inclusive ``(first, last)`` pairs of ints of one family.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import NamedTuple

MAX_ENTRIES = 64
# avoidBuggyIPs splits every /24 into its own interval; beyond a /8 that stops being cheap.
MAX_BUGGY_AVOIDING_V4 = 1 << 24

Interval = tuple[int, int]
# The one family table: Kubernetes' names for the families `ipam` numbers 4 and 6.
FAMILY_NAMES = {4: "IPv4", 6: "IPv6"}
FAMILIES = tuple(FAMILY_NAMES)

_FORMS = "use a single address (192.168.10.7), a CIDR (192.168.10.0/24) or a range (a-b)"


class PoolSpecError(ValueError):
    """An IPPool spec that cannot be used; the message names the entry and the fix."""


class IP(NamedTuple):
    """One address: ordering puts IPv4 before IPv6, then numeric."""

    family: int
    value: int

    def __str__(self) -> str:
        return format_address(self.family, self.value)


def format_address(family: int, value: int) -> str:
    if family == 4:
        return str(ipaddress.IPv4Address(value))
    return str(ipaddress.IPv6Address(value))


def family_name(family: int) -> str:
    return FAMILY_NAMES[family]


def parse_address(text: str) -> IP:
    """One address; ValueError with a user-facing message when it is not one."""
    stripped = text.strip()
    if "%" in stripped:
        raise ValueError(f'"{text}" has a zone index; give the address without "%..."')
    try:
        parsed = ipaddress.ip_address(stripped)
    except ValueError:
        raise ValueError(f'"{text}" is not an IPv4 or IPv6 address') from None
    return IP(parsed.version, int(parsed))


def parse_entry(text: str) -> tuple[int, Interval]:
    """One pool entry (address, CIDR or ``a-b``) as (family, interval); ValueError says why not."""
    if "/" in text:
        return _parse_cidr(text)
    if "-" in text:
        first_text, _, last_text = text.partition("-")
        first, last = _entry_address(first_text), _entry_address(last_text)
        if first.family != last.family:
            raise ValueError("range mixes IPv4 and IPv6; use one range per family")
        if last.value < first.value:
            swapped = f"{last_text.strip()}-{first_text.strip()}"
            raise ValueError(f'range end is below its start; write it as "{swapped}"')
        return first.family, (first.value, last.value)
    ip = _entry_address(text)
    return ip.family, (ip.value, ip.value)


def _entry_address(text: str) -> IP:
    try:
        return parse_address(text)
    except ValueError:
        raise ValueError(f"not an IPv4 or IPv6 address, CIDR or range; {_FORMS}") from None


def _parse_cidr(text: str) -> tuple[int, Interval]:
    try:
        network = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"not a valid CIDR; {_FORMS}") from None
    if int(ipaddress.ip_address(text.strip().partition("/")[0])) != int(network.network_address):
        raise ValueError(f'CIDR has host bits set; did you mean "{network}"?')
    first = int(network.network_address)
    return network.version, (first, first + network.num_addresses - 1)


def parse_entries(
    field: str, entries: Sequence[object], *, required: bool, skip_v4_ends: bool = False
) -> dict[int, list[Interval]]:
    """Entries of ``field`` (e.g. ``addresses``) as normalized intervals per family.

    With ``skip_v4_ends``, IPv4 CIDRs of four or more addresses lose their network and
    broadcast addresses, which a LAN does not route; ranges and single addresses stay as written.
    """
    if required and not entries:
        raise PoolSpecError(f"{field}: must list at least one address, CIDR or range")
    if len(entries) > MAX_ENTRIES:
        raise PoolSpecError(
            f"{field}: {len(entries)} entries, at most {MAX_ENTRIES} allowed; "
            "merge neighbouring entries into CIDRs or ranges"
        )
    per_family: dict[int, list[Interval]] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, str):
            raise PoolSpecError(f"{field}[{index}] {entry!r}: must be a string; {_FORMS}")
        try:
            family, interval = parse_entry(entry)
        except ValueError as error:
            raise PoolSpecError(f'{field}[{index}] "{entry}": {error}') from None
        first, last = interval
        if skip_v4_ends and family == 4 and "/" in entry and last - first >= 3:
            interval = (first + 1, last - 1)
        per_family.setdefault(family, []).append(interval)
    return {family: normalize(per_family[family]) for family in FAMILIES if family in per_family}


def normalize(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, disjoint, with touching intervals merged."""
    merged: list[Interval] = []
    for first, last in sorted(intervals):
        if merged and first <= merged[-1][1] + 1:
            if last > merged[-1][1]:
                merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return merged


def subtract(base: Sequence[Interval], cut: Sequence[Interval]) -> list[Interval]:
    """``base`` minus ``cut``; both normalized."""
    result: list[Interval] = []
    index = 0
    for first, last in base:
        while index < len(cut) and cut[index][1] < first:
            index += 1
        probe = index
        while probe < len(cut) and cut[probe][0] <= last:
            cut_first, cut_last = cut[probe]
            if cut_first > first:
                result.append((first, cut_first - 1))
            first = max(first, cut_last + 1)
            probe += 1
        if first <= last:
            result.append((first, last))
    return result


def size(intervals: Iterable[Interval]) -> int:
    return sum(last - first + 1 for first, last in intervals)


def without_buggy_v4(intervals: Sequence[Interval]) -> list[Interval]:
    """IPv4 intervals minus every x.x.x.0 and x.x.x.255 (hosts some old clients mishandle)."""
    if size(intervals) > MAX_BUGGY_AVOIDING_V4:
        raise PoolSpecError(
            f"avoidBuggyIPs: supported for at most {MAX_BUGGY_AVOIDING_V4} IPv4 addresses "
            "(a /8); split the pool or turn avoidBuggyIPs off"
        )
    result: list[Interval] = []
    for first, last in intervals:
        for block in range(first >> 8, (last >> 8) + 1):
            low, high = max(first, (block << 8) + 1), min(last, (block << 8) + 254)
            if low <= high:
                result.append((low, high))
    return result

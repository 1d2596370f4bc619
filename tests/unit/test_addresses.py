"""Pool address text: what users may write, and what they are told when it is wrong."""

from __future__ import annotations

import pytest

from lbipam.ipam.addresses import (
    IP,
    PoolSpecError,
    normalize,
    parse_address,
    parse_entries,
    parse_entry,
    subtract,
    without_buggy_v4,
)


def v4(text: str) -> int:
    return parse_address(text).value


@pytest.mark.parametrize(
    ("text", "family", "first", "last"),
    [
        ("192.168.10.0/24", 4, "192.168.10.0", "192.168.10.255"),
        ("192.168.20.10-192.168.20.50", 4, "192.168.20.10", "192.168.20.50"),
        ("192.168.30.7", 4, "192.168.30.7", "192.168.30.7"),
        (" 10.0.0.1 - 10.0.0.3 ", 4, "10.0.0.1", "10.0.0.3"),
        ("2001:db8:1::/64", 6, "2001:db8:1::", "2001:db8:1::ffff:ffff:ffff:ffff"),
        ("2001:db8::5-2001:db8::9", 6, "2001:db8::5", "2001:db8::9"),
    ],
)
def test_every_documented_form_parses(text: str, family: int, first: str, last: str) -> None:
    assert parse_entry(text) == (
        family,
        (parse_address(first).value, parse_address(last).value),
    )


def test_an_address_prints_back_in_canonical_form() -> None:
    assert str(parse_address("2001:DB8:0:0::1")) == "2001:db8::1"
    assert str(IP(4, v4("10.1.2.3"))) == "10.1.2.3"
    assert IP(4, 2**32 - 1) < IP(6, 0), "IPv4 sorts before IPv6"


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (
            ["10.0.0.0/24", "10.0.1.0/24", "10.0.0.9-10.0.0.1"],
            'addresses[2] "10.0.0.9-10.0.0.1": range end is below its start; '
            'write it as "10.0.0.1-10.0.0.9"',
        ),
        (
            ["10.0.0.1-2001:db8::1"],
            'addresses[0] "10.0.0.1-2001:db8::1": range mixes IPv4 and IPv6; '
            "use one range per family",
        ),
        (["10.0.0.300"], 'addresses[0] "10.0.0.300": not an IPv4 or IPv6 address, CIDR or range'),
        (["10.0.0.0/33"], 'addresses[0] "10.0.0.0/33": not a valid CIDR'),
        (["10.0.0.5/24"], 'addresses[0] "10.0.0.5/24": CIDR has host bits set; did you mean'),
        (["fe80::1%eth0"], 'addresses[0] "fe80::1%eth0": not an IPv4 or IPv6 address'),
        ([], "addresses: must list at least one address, CIDR or range"),
        ([f"10.0.{i}.0/24" for i in range(65)], "addresses: 65 entries, at most 64 allowed"),
        ([7], "addresses[0] 7: must be a string"),
    ],
)
def test_a_bad_entry_is_named_with_how_to_fix_it(entries: list[object], message: str) -> None:
    with pytest.raises(PoolSpecError) as caught:
        parse_entries("addresses", entries, required=True)
    assert str(caught.value).startswith(message)


def test_sixty_four_entries_are_allowed_and_exclude_may_be_empty() -> None:
    assert len(parse_entries("addresses", [f"10.{i}.0.0/16" for i in range(64)], required=True)[4])
    assert parse_entries("exclude", [], required=False) == {}


def test_entries_of_both_families_are_merged_per_family() -> None:
    parsed = parse_entries(
        "addresses", ["10.0.0.4-10.0.0.7", "2001:db8::1", "10.0.0.0/30"], required=True
    )
    one = parse_address("2001:db8::1").value
    assert parsed == {4: [(v4("10.0.0.0"), v4("10.0.0.7"))], 6: [(one, one)]}


def test_interval_arithmetic() -> None:
    assert normalize([(5, 9), (1, 3), (4, 4), (20, 30), (25, 26)]) == [(1, 9), (20, 30)]
    assert subtract([(0, 10), (20, 30)], [(0, 0), (5, 6), (10, 21), (30, 40)]) == [
        (1, 4),
        (7, 9),
        (22, 29),
    ]


def test_avoiding_buggy_ips_drops_every_dot_zero_and_dot_255() -> None:
    ranges = [(v4("10.0.0.200"), v4("10.0.2.0"))]
    assert without_buggy_v4(ranges) == [
        (v4("10.0.0.200"), v4("10.0.0.254")),
        (v4("10.0.1.1"), v4("10.0.1.254")),
    ]


def test_avoiding_buggy_ips_is_refused_beyond_a_slash_8() -> None:
    with pytest.raises(PoolSpecError, match="avoidBuggyIPs"):
        without_buggy_v4([(0, 2**25 - 1)])

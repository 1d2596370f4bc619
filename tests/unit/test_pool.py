"""One pool: the free-interval allocator, counts, and the label selectors pools use."""

from __future__ import annotations

import itertools
import random

import pytest

from lbipam.ipam.addresses import IP, parse_address
from lbipam.ipam.pool import (
    AllocationOrder,
    CountedFreeIntervals,
    FreeIntervals,
    Pool,
    PoolSpec,
)
from lbipam.ipam.selectors import Requirement, Selector


def ip(text: str) -> IP:
    return parse_address(text)


def take_lowest(free: FreeIntervals) -> int | None:
    value = free.lowest()
    if value is not None:
        assert free.take(value)
    return value


def is_free(free: FreeIntervals, value: int) -> bool:
    return any(first <= value <= last for first, last in free)


def toggle(free: FreeIntervals, model: set[int], value: int) -> None:
    """Take ``value`` when it is free, else give it back: in the allocator and its model."""
    if value in model:
        assert free.take(value)
        model.remove(value)
    else:
        free.give_back(value)
        model.add(value)


def test_the_lowest_free_address_goes_first_and_the_free_list_stays_one_interval() -> None:
    free = FreeIntervals([(10, 13)])
    assert [take_lowest(free) for _ in range(5)] == [10, 11, 12, 13, None]
    assert free.free == 0
    assert list(free) == []


def test_reserving_a_specific_address_splits_and_releasing_merges_back() -> None:
    free = FreeIntervals([(0, 9)])
    assert free.take(5)
    assert not free.take(5), "an address is handed out once"
    assert not free.take(42), "outside the pool"
    assert list(free) == [(0, 4), (6, 9)]
    assert free.lowest() == 0
    free.give_back(5)
    assert list(free) == [(0, 9)]
    assert free.free == 10
    with pytest.raises(ValueError, match="already free"):
        free.give_back(5)


@pytest.mark.parametrize("kind", [FreeIntervals, CountedFreeIntervals])
def test_many_fragments_behave_like_a_plain_set(kind: type[FreeIntervals]) -> None:
    """Enough intervals to split chunks many times; checked against a set after every step."""
    rng = random.Random(7)
    universe = range(20_000)
    free = kind([(0, 19_999)])
    model = set(universe)
    for step in range(20_000):
        value = rng.choice(universe)
        if step % 7 == 0:
            lowest = take_lowest(free)
            assert lowest == (min(model) if model else None)
            model.discard(lowest)
        else:
            toggle(free, model, value)
        assert free.free == len(model)
    assert {v for first, last in free for v in range(first, last + 1)} == model
    assert all(is_free(free, v) == (v in model) == (v in free) for v in universe)
    intervals = list(free)
    assert all(a[1] + 1 < b[0] for a, b in itertools.pairwise(intervals))


def test_counted_free_intervals_find_the_nth_free_address_through_splits_and_merges() -> None:
    """Chunks split, empty and merge across their borders; the n-th free address stays right."""
    rng = random.Random(11)
    universe = range(6_000)
    free = CountedFreeIntervals([(0, 5_999)])
    model = set(universe)

    def toggle_and_check(step: int, value: int) -> None:
        toggle(free, model, value)
        if step % 97 == 0 and model:
            ordered = sorted(model)
            for index in {0, len(ordered) // 2, len(ordered) - 1, rng.randrange(len(ordered))}:
                assert free.nth(index) == ordered[index], f"step {step}, index {index}"

    for step in range(30_000):
        toggle_and_check(step, rng.choice(universe))
    # Take every free address (chunks empty), give back every other one (singletons split
    # chunks), then the rest (chunks merge into one interval).
    for step, value in enumerate(sorted(model, key=lambda _: rng.random())):
        toggle_and_check(step, value)
    for step, value in enumerate([*universe[::2], *universe[1::2]]):
        toggle_and_check(step, value)
    assert list(free) == [(0, 5_999)]
    assert [free.nth(i) for i in (0, 2_999, 5_999)] == [0, 2_999, 5_999]


def test_an_ipv6_slash_64_counts_exactly() -> None:
    pool = Pool.build(PoolSpec("v6", ("2001:db8:1::/64",)), held=[ip("2001:db8:1::7")])
    (counts,) = pool.counts()
    assert (counts.family, counts.total, counts.allocated, counts.available) == (
        6,
        2**64,
        1,
        2**64 - 1,
    )
    assert pool.free_address(6) == ip("2001:db8:1::")


def test_exclude_and_buggy_ips_are_never_counted_nor_handed_out() -> None:
    spec = PoolSpec(
        "public",
        ("192.168.10.0/24", "2001:db8::/126"),
        exclude=("192.168.10.1",),
        avoid_buggy_ips=True,
    )
    pool = Pool.build(spec, held=())
    assert [(c.family, c.total) for c in pool.counts()] == [(4, 253), (6, 4)]
    assert pool.free_address(4) == ip("192.168.10.2")
    assert not pool.offers(ip("192.168.10.255")) and not pool.offers(ip("192.168.10.1"))
    assert pool.contains(ip("192.168.10.255")), "a holder of a buggy address keeps it"
    assert not pool.contains(ip("192.168.10.1")), "an excluded address leaves the pool"
    assert pool.offers(ip("2001:db8::"))


def test_ipv4_cidrs_skip_network_and_broadcast_unless_allowed_ranges_stay_as_written() -> None:
    spec = PoolSpec("lan", ("192.168.10.0/24", "10.0.0.0/31", "10.1.0.0-10.1.0.3"))
    pool = Pool.build(spec, held=())
    assert [(c.family, c.total) for c in pool.counts()] == [(4, 254 + 2 + 4)]
    assert not pool.offers(ip("192.168.10.0")) and not pool.offers(ip("192.168.10.255"))
    assert pool.contains(ip("192.168.10.0")), "a Service that holds .0 keeps it"
    assert pool.offers(ip("10.0.0.0")) and pool.offers(ip("10.1.0.0"))

    allowed = Pool.build(PoolSpec("lan", ("192.168.10.0/24",), allow_first_last_ips=True), ())
    assert allowed.free_address(4) == ip("192.168.10.0")
    assert [c.total for c in allowed.counts()] == [256]


def test_a_pool_whose_spec_turns_invalid_keeps_its_last_good_addresses() -> None:
    good = Pool.build(PoolSpec("p", ("10.0.0.0/30",)), held=())
    bad = Pool.build(PoolSpec("p", ("10.0.0.3-10.0.0.0",)), held=[ip("10.0.0.1")], previous=good)
    assert bad.error is not None and "range end is below its start" in bad.error
    assert bad.contains(ip("10.0.0.1"))
    assert [(c.total, c.allocated) for c in bad.counts()] == [(2, 1)], ".1 and .2 of the /30"
    never_good = Pool.build(PoolSpec("q", ()), held=())
    assert never_good.counts() == ()
    assert never_good.error == "addresses: must list at least one address, CIDR or range"


# ---- allocation order ------------------------------------------------------------------


def random_pool(addresses: tuple[str, ...], held: list[IP], seed: int) -> Pool:
    spec = PoolSpec("r", addresses, allocation_order=AllocationOrder.RANDOM)
    return Pool.build(spec, held=held, rng=random.Random(seed))


def test_a_random_pool_hands_out_free_addresses_of_both_families_never_a_held_one() -> None:
    held = [ip("10.0.0.5"), ip("2001:db8::1")]
    pool = random_pool(("10.0.0.0/29", "2001:db8::/126"), held, seed=3)

    handed = []
    for family in (4, 6, 4, 4, 6, 4, 6, 4):
        address = pool.free_address(family)
        assert address is not None and pool.offers(address) and address not in held
        pool.take(address)
        handed.append(address)

    assert len(set(handed)) == 8, ".1-.6 of the /29 but .5, and three of the /126, each once"
    assert pool.free_address(4) is None and pool.free_address(6) is None


def test_random_order_is_uniform_over_the_free_addresses_of_a_fragmented_pool() -> None:
    """Chi-square over every free address of a pool with holes, in both of its regimes.

    The pool is first mostly free (addresses drawn among all usable ones), then under an
    eighth free (found by counting down the free intervals); each must be uniform.
    """
    addresses = ("10.1.0.0-10.1.0.99", "10.1.1.0-10.1.1.49")  # 150 usable, two ranges
    rng = random.Random(2026)
    everything = [ip(f"10.1.0.{i}") for i in range(100)] + [ip(f"10.1.1.{i}") for i in range(50)]
    for held_count in (30, 135):
        held = rng.sample(everything, held_count)
        pool = random_pool(addresses, held, seed=held_count)
        free = [a for a in everything if a not in held]
        draws = 200 * len(free)
        seen = {a: 0 for a in free}
        for _ in range(draws):
            address = pool.free_address(4)
            assert address in seen, f"{address} is held or outside the pool"
            seen[address] += 1
        expected = draws / len(free)
        chi_square = sum((n - expected) ** 2 / expected for n in seen.values())
        # Wilson-Hilferty: the chi-square quantile at z = 4 (about one failure in 30,000
        # runs of a uniform draw), for len(free) - 1 degrees of freedom.
        k = len(free) - 1
        bound = k * (1 - 2 / (9 * k) + 4 * (2 / (9 * k)) ** 0.5) ** 3
        assert chi_square < bound, (held_count, chi_square, bound)


def test_a_lowest_pool_still_hands_out_the_lowest_free_address() -> None:
    pool = Pool.build(PoolSpec("l", ("10.2.0.0/29",)), held=[ip("10.2.0.0")])
    assert pool.spec.allocation_order is AllocationOrder.LOWEST
    assert pool.free_address(4) == ip("10.2.0.1")


def test_allocation_order_reads_its_two_names_and_refuses_others() -> None:
    assert AllocationOrder.parse(None) is AllocationOrder.LOWEST
    assert AllocationOrder.parse("Random") is AllocationOrder.RANDOM
    with pytest.raises(ValueError, match="allocationOrder 'random' is not one of Lowest, Random"):
        AllocationOrder.parse("random")


# ---- selectors -------------------------------------------------------------------------


def test_the_empty_selector_matches_everything() -> None:
    assert Selector.from_dict({}).matches({})
    assert Selector.from_dict({"matchLabels": {}}).matches({"a": "b"})


def test_match_labels_and_every_operator() -> None:
    selector = Selector.from_dict(
        {
            "matchLabels": {"tier": "web"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "staging"]},
                {"key": "team", "operator": "NotIn", "values": ["legacy"]},
                {"key": "exposed", "operator": "Exists"},
                {"key": "internal", "operator": "DoesNotExist"},
            ],
        }
    )
    labels = {"tier": "web", "env": "prod", "exposed": ""}
    assert selector.matches(labels)
    assert selector.matches({**labels, "team": "core"})
    assert not selector.matches({**labels, "team": "legacy"})
    assert not selector.matches({**labels, "env": "dev"})
    assert not selector.matches({**labels, "tier": "db"})
    assert not selector.matches({**labels, "internal": "yes"})
    assert not selector.matches({"tier": "web", "env": "prod"})
    assert selector.match_expressions[0] == Requirement("env", "In", frozenset({"prod", "staging"}))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"matchLabel": {}}, "unknown field 'matchLabel'"),
        ({"matchLabels": ["a"]}, "matchLabels: must be a map"),
        ({"matchLabels": {"a": 1}}, "keys and values must be strings"),
        ({"matchExpressions": {}}, "matchExpressions: must be a list"),
        ({"matchExpressions": [{"key": "a", "operator": "Is"}]}, "operator 'Is' is not one of"),
        ({"matchExpressions": [{"key": "a", "operator": "In"}]}, "needs at least one value"),
        (
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
            "takes no values",
        ),
        ({"matchExpressions": [{"operator": "Exists"}]}, "key must be a non-empty string"),
    ],
)
def test_a_malformed_selector_says_what_is_wrong(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Selector.from_dict(data)

"""Allocator and registry throughput and memory; prints JSON.

Run: ``python bench/ipam.py`` (with ``lbipam`` importable). Single-threaded, wall clock.
"""

from __future__ import annotations

import gc
import itertools
import json
import random
import sys
import time
import tracemalloc
from collections.abc import Callable
from functools import partial
from typing import Any

from lbipam.ipam.addresses import IP, parse_entry
from lbipam.ipam.pool import AllocationOrder, CountedFreeIntervals, FreeIntervals, Pool, PoolSpec
from lbipam.ipam.registry import Registry
from lbipam.ipam.requests import ServiceKey, ServiceRequest

SERVICES = 100_000
PAIRS = 200_000
# A /16 holds only 65,536 addresses, so 100k Services need the IPv4 side to be a /15.
NETWORKS = {"v4_slash15": "10.0.0.0/15", "v6_slash64": "2001:db8::/64"}
# Allocations timed one by one on top of SERVICES holders, per allocation order.
ORDER_ALLOCATIONS = 10_000


def _take_lowest(free: FreeIntervals) -> int | None:
    """What the registry does per new Service: find the lowest free address, reserve it."""
    value = free.lowest()
    if value is not None:
        free.take(value)
    return value


def measure(work: Callable[[], dict[str, Any]], repeat: int = 3) -> dict[str, Any]:
    """Best rates of ``repeat`` timed runs, then one run under tracemalloc (slower) for memory."""
    result: dict[str, Any] = {}
    for _ in range(repeat):
        gc.collect()
        for name, value in work().items():
            best = max(value, result.get(name, value)) if name.endswith("_per_s") else value
            result[name] = best
    gc.collect()
    tracemalloc.start()
    traced = work()
    result["peak_mib"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 2)
    tracemalloc.stop()
    result.update({name: value for name, value in traced.items() if name not in result})
    return result


def rate(count: int, seconds: float) -> int:
    return round(count / seconds)


def allocator(cidr: str) -> dict[str, Any]:
    """Take the lowest address 100k times, then give all back in random order."""
    _, interval = parse_entry(cidr)
    free = FreeIntervals([interval])
    start = time.perf_counter()
    taken = [_take_lowest(free) for _ in range(SERVICES)]
    allocate = time.perf_counter() - start
    values = [v for v in taken if v is not None]
    assert len(values) == SERVICES
    random.Random(1).shuffle(values)
    start = time.perf_counter()
    for value in values:
        free.give_back(value)
    release = time.perf_counter() - start
    return {
        "allocations_per_s": rate(SERVICES, allocate),
        "releases_per_s": rate(SERVICES, release),
        "free_intervals_after": sum(1 for _ in free),
    }


def fragmented() -> dict[str, Any]:
    """100k holders scattered over a /64, then random reserve-one/release-one pairs."""
    _, (first, last) = parse_entry("2001:db8::/64")
    rng = random.Random(2)
    free = FreeIntervals([(first, last)])
    holders: list[int] = []
    while len(holders) < SERVICES:
        value = rng.randint(first, last)
        if free.take(value):
            holders.append(value)
    probes = [rng.randint(first, last) for _ in range(PAIRS)]
    victims = [rng.randrange(SERVICES) for _ in range(PAIRS)]
    start = time.perf_counter()
    for probe, victim in zip(probes, victims, strict=True):
        if free.take(probe):
            free.give_back(holders[victim])
            holders[victim] = probe
    seconds = time.perf_counter() - start
    return {
        "holders": SERVICES,
        "free_intervals": sum(1 for _ in free),
        "reserve_release_pairs_per_s": rate(PAIRS, seconds),
    }


def _scattered_holders(cidr: str, count: int, seed: int) -> list[int]:
    _, (first, last) = parse_entry(cidr)
    rng = random.Random(seed)
    chosen: set[int] = set()
    while len(chosen) < count:
        chosen.add(rng.randint(first, last))
    return sorted(chosen)


def _per_allocation(seconds: list[float]) -> dict[str, float]:
    """Mean and percentiles of one allocation, in microseconds."""
    ordered = sorted(seconds)

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1e6, 2)

    return {
        "mean_us": round(sum(ordered) / len(ordered) * 1e6, 2),
        "p50_us": at(0.5),
        "p99_us": at(0.99),
        "max_us": at(1.0),
    }


def _interleaved(allocators: dict[str, Callable[[int], object]]) -> dict[str, Any]:
    """Each allocator's n-th of ORDER_ALLOCATIONS allocations timed alone, the allocators
    taking turns, so that load from other processes falls on all of them alike."""
    seconds: dict[str, list[float]] = {name: [] for name in allocators}
    for number in range(ORDER_ALLOCATIONS):
        for name, allocate in allocators.items():
            start = time.perf_counter()
            allocate(number)
            seconds[name].append(time.perf_counter() - start)
    return {name: _per_allocation(taken) for name, taken in seconds.items()}


def _allocate(pool: Pool, family: int, _: int) -> None:
    ip = pool.free_address(family)
    assert ip is not None
    pool.take(ip)


def _ensure_new(reg: Registry, family: int, number: int) -> None:
    key = ServiceKey("bench", f"svc-{number}")
    if not reg.ensure(ServiceRequest(key, "2026-01-02T00:00:00Z", families=(family,))).ok:
        raise RuntimeError(f"{key} got no address")


def order_pool(cidr: str) -> dict[str, Any]:
    """One allocation (pick + take) in a pool with SERVICES scattered holders, by order.

    ``random_counted_descent`` always finds the n-th free address by the per-chunk counts,
    as a Random pool under an eighth free does (or when all its draws miss).
    """
    family = 6 if ":" in cidr else 4
    holders = _scattered_holders(cidr, SERVICES, seed=3)
    allocators: dict[str, Callable[[int], object]] = {}
    for order in AllocationOrder:
        spec = PoolSpec("bench", (cidr,), allow_first_last_ips=True, allocation_order=order)
        pool = Pool.build(spec, held=[IP(family, value) for value in holders])
        allocators[order.value.lower()] = partial(_allocate, pool, family)
    _, (first, last) = parse_entry(cidr)
    gaps = itertools.pairwise([first - 1, *holders, last + 1])
    counted = CountedFreeIntervals((a + 1, b - 1) for a, b in gaps if b - a > 1)
    draw = random.SystemRandom()
    allocators["random_counted_descent"] = lambda _: counted.take(
        counted.nth(draw.randrange(counted.free))
    )
    return {"holders": SERVICES, **_interleaved(allocators)}


def order_registry(cidr: str) -> dict[str, Any]:
    """Registry.ensure() of a new Service in one pool that SERVICES Services hold, by order."""
    family = 6 if ":" in cidr else 4
    allocators: dict[str, Callable[[int], object]] = {}
    for order in AllocationOrder:
        reg = Registry()
        spec = PoolSpec("bench", (cidr,), created="2026-01-01T00:00:00Z", allocation_order=order)
        reg.apply_pool(spec)
        for number in range(SERVICES):
            _ensure_new(reg, family, number)
        allocators[order.value.lower()] = lambda n, reg=reg: _ensure_new(reg, family, -1 - n)
    return {"holders": SERVICES, **_interleaved(allocators)}


def _ratios(case: dict[str, Any]) -> dict[str, float]:
    """Random over Lowest, per statistic."""
    lowest, drawn = case["lowest"], case["random"]
    return {name: round(drawn[name] / lowest[name], 2) for name in lowest}


def registry(cidr: str) -> dict[str, Any]:
    """Full ensure() path for 100k new Services in one pool, then release() of each."""
    reg = Registry()
    reg.apply_pool(PoolSpec(name="bench", addresses=(cidr,), created="2026-01-01T00:00:00Z"))
    family = 6 if ":" in cidr else 4
    requests = [
        ServiceRequest(ServiceKey("bench", f"svc-{i}"), "2026-01-02T00:00:00Z", families=(family,))
        for i in range(SERVICES)
    ]
    before = tracemalloc.get_traced_memory()[0]
    start = time.perf_counter()
    for request in requests:
        if not reg.ensure(request).ok:
            raise RuntimeError(f"{request.key} got no address")
    ensure = time.perf_counter() - start
    held = tracemalloc.get_traced_memory()[0] - before
    start = time.perf_counter()
    for request in requests:
        reg.release(request.key, 0.0)
    release = time.perf_counter() - start
    result: dict[str, Any] = {
        "ensures_per_s": rate(SERVICES, ensure),
        "releases_per_s": rate(SERVICES, release),
    }
    if tracemalloc.is_tracing():
        result["registry_holding_mib"] = round(held / 2**20, 2)
    return result


def main() -> None:
    report: dict[str, Any] = {"python": sys.version.split()[0], "services": SERVICES}
    for label, cidr in NETWORKS.items():
        report[f"allocator_{label}"] = measure(partial(allocator, cidr))
    report["allocator_fragmented_v6_slash64"] = measure(fragmented)
    for label, cidr in NETWORKS.items():
        report[f"registry_{label}"] = measure(partial(registry, cidr), repeat=1)
    # A Random pool draws in both, the /15 three quarters held; random_counted_descent is what
    # a pool under an eighth free pays instead.
    for label, cidr in NETWORKS.items():
        for level, case in (("pool", order_pool), ("registry", order_registry)):
            timed = case(cidr)
            timed["random_over_lowest"] = _ratios(timed)
            report[f"allocation_order_{level}_{label}"] = timed
    v4, v6 = report["allocator_v4_slash15"], report["allocator_v6_slash64"]
    report["v6_over_v4"] = {
        "allocation_time": round(v4["allocations_per_s"] / v6["allocations_per_s"], 2),
        "release_time": round(v4["releases_per_s"] / v6["releases_per_s"], 2),
        "peak_memory": round(v6["peak_mib"] / v4["peak_mib"], 2),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

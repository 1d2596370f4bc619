"""The holdings' invariants: every index agrees with the others and with the pools' counts."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from lbipam.ipam.addresses import parse_address
from lbipam.ipam.catalog import Catalog
from lbipam.ipam.holdings import Holdings
from lbipam.ipam.pool import PoolSpec
from lbipam.ipam.registry import RangeKind, Registry
from lbipam.ipam.requests import Port, Reason, ServiceKey, ServiceRequest

HTTP, DNS = Port(80, "TCP"), Port(53, "UDP")


def service(name: str, created: int, **fields: Any) -> ServiceRequest:
    return ServiceRequest(ServiceKey("default", name), f"2026-01-02T03:04:{created:02d}Z", **fields)


def test_the_indexes_agree_after_a_day_of_sharing_displacing_blocking_and_pool_edits() -> None:
    reg = Registry()
    reg.apply_pool(PoolSpec("public", ("10.0.0.0/29",), created="2026-01-01T00:00:00Z"))
    reg.apply_pool(PoolSpec("v6", ("2001:db8::/126",), created="2026-01-01T00:00:01Z"))
    reg.check()

    web = service(
        "web", 2, sharing_key="k", ports=frozenset({HTTP}), family_policy="PreferDualStack"
    )
    dns = service("dns", 3, sharing_key="k", ports=frozenset({DNS}))
    young = service("young", 5, requested_ips=("10.0.0.3",))
    statuses = {}
    for request in (web, dns, young):
        statuses[request.key] = reg.ensure(request).addresses
        reg.check()
    assert statuses[dns.key] == statuses[web.key][:1]  # shared with web

    # An older Service whose status already shows the address (a restored backup, say).
    old = service("old", 1, held=("10.0.0.3",))
    assert reg.ensure(old).displaced == (young.key,)
    reg.check()
    assert reg.ensure(replace(young, held=statuses[young.key])).reason is Reason.ADDRESS_IN_USE
    reg.check()

    assert reg.block("10.0.0.1", "a ClusterIP") == (web.key, dns.key)
    reg.check()
    assert reg.unblock("10.0.0.1")
    reg.reserve(RangeKind.SERVICE_CIDR, {"cluster": ["10.0.0.4/30"]})
    reg.check()

    edited = PoolSpec("public", ("10.0.0.0/30",), created="2026-01-01T00:00:00Z")
    assert reg.apply_pool(edited).revoked == ()
    reg.release(old.key, 0.0)
    reg.check()
    reg.remove_pool("v6")
    reg.check()

    held = {key: reg.held_by(key) for key in (web.key, dns.key, young.key)}
    assert reg.rebuild(replace(r, held=held[r.key]) for r in (web, dns, young)) == ()
    reg.check()


def test_a_pool_counting_an_address_nobody_holds_is_caught() -> None:
    catalog = Catalog()
    holdings = Holdings(catalog)
    catalog.put(PoolSpec("public", ("10.0.0.0/29",), created="2026-01-01T00:00:00Z"), ())
    catalog.changed()
    holdings.check()

    catalog.pool("public").take(parse_address("10.0.0.2"))

    with pytest.raises(AssertionError, match='pool "public" counts 1 IPv4 addresses used'):
        holdings.check()

"""Holds after release in the cluster: the claim kept for the Service, and let go at the end."""

from __future__ import annotations

import asyncio
import time

from lbipam.api import CLAIM_HELD_SINCE
from lbipam.controllers.claims import AddressClaims
from lbipam.controllers.dispatch import Dispatcher
from lbipam.controllers.services import ServiceController
from lbipam.controllers.views import ServiceViews
from lbipam.ipam.durations import stamp
from lbipam.ipam.pool import PoolSpec
from lbipam.ipam.registry import Registry
from lbipam.ipam.requests import ServiceKey
from lbipam.objects import ServiceView, claim_view
from lbipam.runtime.metrics import Metrics
from tests.unit.fakes import RecordingGateway, claim
from tests.unit.test_service_controller import service

WEB = ServiceKey("shop", "web")
ADDRESS = "198.18.0.1"
STABLE = PoolSpec("stable", ("198.18.0.0/29",), release_hold=600.0)


class Harness:
    """The Service controller and its claims as a term wires them, holds included."""

    def __init__(self) -> None:
        self.registry = Registry()
        self.registry.apply_pool(STABLE)
        self.gateway = RecordingGateway()
        self.claims = AddressClaims(self.gateway, True, self.registry)
        self.controller = ServiceController(
            self.registry, self.gateway, Metrics(), ServiceViews(), self.claims
        )
        self.dispatcher = Dispatcher(self.controller, self)
        self.controller.rebuild([], {})

    async def service_changed(self, key: ServiceKey) -> None:
        """The policy controller's ear: nothing to do here."""

    async def observe(self, key: ServiceKey, view: ServiceView | None) -> None:
        """A Service event; a deletion is the cluster's too (its status reads as gone)."""
        self.gateway.service_event(key, view is None)
        await self.dispatcher.service_changed(key, view)

    def held_since(self) -> str | None:
        claim = self.gateway.claims.get(ADDRESS)
        return (
            None
            if claim is None
            else claim["metadata"].get("annotations", {}).get(CLAIM_HELD_SINCE, "")
        )


async def test_a_deleted_services_claim_becomes_a_hold_and_plain_again_when_it_returns() -> None:
    h = Harness()
    await h.observe(WEB, service("web"))
    assert h.held_since() == ""

    await h.observe(WEB, None)
    since = h.held_since()
    assert since and h.gateway.claim_writes[-2:] == [("delete", ADDRESS), ("hold", ADDRESS)]

    await h.observe(WEB, service("web"))

    assert h.gateway.statuses[-1][1] == (ADDRESS,)
    [kept] = [e for e in h.gateway.events if e.reason == "AddressKept"]
    assert kept.message.startswith(f"kept {ADDRESS}, held for it since {since}")
    assert h.held_since() == ""


async def test_a_restarted_term_reads_the_holds_back_from_the_claims() -> None:
    h = Harness()
    await h.observe(WEB, service("web"))
    await h.observe(WEB, None)

    after = Harness()
    after.gateway.claims = h.gateway.claims
    after.claims.rebuild(claim_view(body) for body in h.gateway.claims.values())
    after.controller.rebuild([], {})

    assert after.registry.hold_of(ADDRESS) is not None
    await after.dispatcher.service_changed(ServiceKey("shop", "other"), service("other"))
    assert after.gateway.statuses[-1][1] == ("198.18.0.2",)


async def test_when_the_hold_ends_its_claim_goes_and_the_address_is_free() -> None:
    h = Harness()
    await h.observe(WEB, service("web"))
    await h.observe(WEB, None)
    assert h.controller.end_holds(time.time()).services == []

    h.dispatcher.schedule(h.controller.end_holds(time.time() + 600))
    for _ in range(20):
        await asyncio.sleep(0.01)

    assert ADDRESS not in h.gateway.claims
    assert h.registry.hold_of(ADDRESS) is None


async def test_a_service_deleted_while_nobody_led_has_its_address_held_from_then() -> None:
    h = Harness()
    h.gateway.claims[ADDRESS] = claim(ADDRESS, WEB, age=120)
    h.gateway.gone.add(WEB)

    await h.controller.collect_claims(relist=True)

    assert h.held_since()
    hold = h.registry.hold_of(ADDRESS)
    assert hold is not None and hold[0] == WEB
    await h.dispatcher.service_changed(ServiceKey("shop", "other"), service("other"))
    assert h.gateway.statuses[-1][1] == ("198.18.0.2",)


async def test_a_service_leaving_our_class_right_after_a_change_of_leader_is_held_at_once() -> None:
    """A claim the last term made a moment ago becomes the hold all the same: left as a plain
    claim until 60 s old (as another replica's young claims are), the hold would live in
    memory only and its claim would be collected as nobody's."""
    h = Harness()
    h.gateway.claims[ADDRESS] = claim(ADDRESS, WEB)  # made by the last term, just now
    h.claims.rebuild([claim_view(h.gateway.claims[ADDRESS])])
    h.controller.rebuild([service("web", held=ADDRESS)], {})
    h.gateway.statuses.append((WEB, (ADDRESS,), None))

    await h.observe(WEB, service("web", held=ADDRESS, loadBalancerClass="other.example/lb"))

    assert h.gateway.statuses[-1][:2] == (WEB, ())
    assert h.held_since(), "the claim is the hold"


async def test_a_hold_the_last_term_made_ends_on_time_though_its_claim_is_young() -> None:
    """Found by the chaos machine (seed 7402, episode 1854147602): web left our class, its
    address was held for 5 s, then the Lease was stolen. The new leader ended the hold on
    time but kept its claim, another term's and younger than 60 s, as if a status write could
    rest on it: the hold outlived its end by most of a minute."""
    h = Harness()
    since = time.time() - 700.0  # the pool holds for 600 s: over
    h.gateway.claims[ADDRESS] = claim(ADDRESS, WEB, held_since=stamp(since))  # made just now
    h.claims.rebuild([claim_view(h.gateway.claims[ADDRESS])])
    h.controller.rebuild([service("web", loadBalancerClass="other.example/lb")], {})
    h.gateway.statuses.append((WEB, (), None))

    h.dispatcher.schedule(h.controller.end_holds(time.time()))
    for _ in range(100):
        if ADDRESS not in h.gateway.claims:
            break
        await asyncio.sleep(0.01)

    assert ADDRESS not in h.gateway.claims
    assert h.registry.hold_of(ADDRESS) is None


async def test_a_hold_whose_address_left_every_pool_ends_at_once_after_a_change_of_leader() -> None:
    """Found by the chaos machine (seed 7614, episode 1560749318): web's pool was being
    deleted when web left our class; its address was held, and the hold ended at once, since
    no pool may hand the address out. The API server froze before the claim was deleted, and
    the next leader, finding a hold on an address in no pool, kept its claim until 60 s old."""
    h = Harness()
    outside = "198.18.9.1"  # in no pool: the pool that had it is gone
    h.gateway.claims[outside] = claim(outside, WEB, held_since=stamp(time.time() - 3))
    h.claims.rebuild([claim_view(h.gateway.claims[outside])])
    h.controller.rebuild([service("web", loadBalancerClass="other.example/lb")], {})
    h.gateway.statuses.append((WEB, (), None))

    await h.controller.collect_claims()

    assert outside not in h.gateway.claims

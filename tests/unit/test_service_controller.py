"""The Service controller against a recording gateway: a Service in → writes and Events out."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from lbipam.api import SERVICE_CONDITION
from lbipam.controllers import claims as claims_module
from lbipam.controllers import sweep
from lbipam.controllers.claims import AddressClaims
from lbipam.controllers.dispatch import Dispatcher
from lbipam.controllers.results import Next
from lbipam.controllers.services import ServiceController
from lbipam.controllers.sweep import Sweeper
from lbipam.controllers.views import ServiceViews
from lbipam.ipam.pool import PoolSpec
from lbipam.ipam.registry import Registry
from lbipam.ipam.requests import ServiceKey
from lbipam.objects import ClaimView, ServiceView, claim_view, service_view
from lbipam.runtime.metrics import Metrics
from lbipam.settings import Settings
from tests.unit.fakes import RecordingGateway, claim

SETTINGS = Settings.load({"LBIPAM_NAMESPACE": "x"})


def service(
    name: str,
    *,
    held: str | None = None,
    kind: str = "LoadBalancer",
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> ServiceView:
    body: dict[str, Any] = {
        "metadata": {
            "namespace": "shop",
            "name": name,
            "uid": f"uid-{name}",
            "resourceVersion": "7",
            "creationTimestamp": f"2026-01-01T00:00:0{len(name) % 10}Z",
            "annotations": annotations or {},
        },
        "spec": {"type": kind, "ports": [{"port": 80}], **spec},
    }
    if held:
        body["status"] = {"loadBalancer": {"ingress": [{"ip": held}]}}
    return service_view(body, SETTINGS)


class Harness:
    """The Service controller behind the dispatcher, as each term wires them; the harness
    stands in for the policy controller and records which Services it was told of."""

    def __init__(self, *pools: PoolSpec) -> None:
        self.registry = Registry()
        for pool in pools:
            self.registry.apply_pool(pool)
        self.gateway = RecordingGateway()
        self.told: list[ServiceKey] = []
        claims = AddressClaims(self.gateway, enabled=True)
        self.controller = ServiceController(
            self.registry, self.gateway, Metrics(), ServiceViews(), claims
        )
        self.dispatcher = Dispatcher(self.controller, self)
        self.sweeper = Sweeper(self.controller, self.dispatcher, self.gateway)
        self.controller.rebuild([], {})

    async def observe(self, key: ServiceKey, view: ServiceView | None) -> None:
        """A Service event, as the Kopf handler hands it on; a deletion is the cluster's too."""
        self.gateway.service_event(key, view is None)
        await self.dispatcher.service_changed(key, view)

    async def service_changed(self, key: ServiceKey) -> None:
        self.told.append(key)

    async def sweep_until(self, done: Callable[[], bool], seconds: float = 5.0) -> None:
        """Run the sweeper until `done` says so, or for `seconds` at most."""
        sweeping = asyncio.create_task(self.sweeper.run())
        for _ in range(int(seconds / 0.01)):
            if done():
                break
            await asyncio.sleep(0.01)
        sweeping.cancel()


PUBLIC = PoolSpec("public", ("198.18.0.0/29",))


async def test_a_new_service_gets_the_lowest_usable_address_in_one_write_and_one_event() -> None:
    h = Harness(PUBLIC)

    await h.observe(ServiceKey("shop", "web"), service("web"))

    [(key, ingress, condition)] = h.gateway.statuses
    assert (key, ingress) == (ServiceKey("shop", "web"), ("198.18.0.1",))
    assert condition is not None and condition["type"] == SERVICE_CONDITION
    assert (condition["status"], condition["reason"]) == ("True", "Allocated")
    assert h.gateway.reasons() == ["AddressAllocated"]
    assert h.told == [ServiceKey("shop", "web")]


async def test_a_service_already_showing_its_decision_is_not_written_again() -> None:
    h = Harness(PUBLIC)
    await h.observe(ServiceKey("shop", "web"), service("web"))
    (_, _, condition) = h.gateway.statuses[0]
    echoed = service("web", held="198.18.0.1")
    echoed = ServiceView(echoed.key, echoed.uid, True, echoed.request, condition, echoed.body)

    await h.observe(echoed.key, echoed)

    assert len(h.gateway.statuses) == 1
    assert h.gateway.reasons() == ["AddressAllocated"]


async def test_the_echo_of_its_own_status_write_is_not_decided_again() -> None:
    h = Harness(PUBLIC)
    key = ServiceKey("shop", "web")
    await h.observe(key, service("web"))
    (_, _, condition) = h.gateway.statuses[0]
    echoed = service("web", held="198.18.0.1")
    meta = {**echoed.body["metadata"], "resourceVersion": "written-1"}
    echoed = replace(echoed, condition=condition, body={**echoed.body, "metadata": meta})

    await h.observe(key, echoed)

    assert h.told == [key], "the echo went on to the policy controller"
    view = h.controller.views.get(key)
    assert view is not None and view.request.held == ("198.18.0.1",)
    assert (view.resource_version, view.condition) == ("written-1", condition)


async def test_a_service_requeued_before_its_echo_arrives_is_not_written_twice() -> None:
    h = Harness(PUBLIC)
    key = ServiceKey("shop", "web")
    await h.observe(key, service("web"))
    again = Next()
    again.requeue([key])  # as a displacement or a pool change does

    h.dispatcher.schedule(again)
    for _ in range(5):
        await asyncio.sleep(0.01)  # the requeued reconcile runs in the background

    assert len(h.gateway.statuses) == 1, "the write went out again with the version it replaced"
    assert h.gateway.reasons() == ["AddressAllocated"]


async def test_an_event_seen_during_its_write_is_not_overwritten_by_the_write() -> None:
    h = Harness(PUBLIC)
    key = ServiceKey("shop", "web")
    newer = replace(service("web"), body={"metadata": {"resourceVersion": "9"}, "spec": {}})
    write = h.gateway.apply_service_status

    async def event_during_write(*args: Any) -> dict[str, Any]:
        h.controller.observe(key, newer)  # the watch, outside the Service's lock
        return await write(*args)

    h.gateway.apply_service_status = event_during_write  # type: ignore[method-assign]

    await h.observe(key, service("web"))

    assert h.controller.views.get(key) is newer
    assert not h.controller.is_echo(key, "written-1")


async def test_no_pool_means_a_false_condition_a_warning_and_a_pending_service() -> None:
    h = Harness()

    await h.observe(ServiceKey("shop", "web"), service("web"))

    [(_, ingress, condition)] = h.gateway.statuses
    assert ingress == () and condition is not None
    assert (condition["status"], condition["reason"]) == ("False", "NoMatchingPool")
    assert h.gateway.events[0].warning and h.gateway.reasons() == ["AllocationFailed"]
    assert h.controller.pending == {ServiceKey("shop", "web")}


async def test_a_service_that_stops_being_a_load_balancer_is_cleared_and_released() -> None:
    h = Harness(PUBLIC)
    await h.observe(ServiceKey("shop", "web"), service("web"))
    (_, _, condition) = h.gateway.statuses[0]
    changed = service("web", held="198.18.0.1", kind="ClusterIP")
    changed = ServiceView(changed.key, changed.uid, False, changed.request, condition, changed.body)

    await h.observe(changed.key, changed)

    assert h.gateway.statuses[-1] == (ServiceKey("shop", "web"), (), None)
    assert h.gateway.reasons() == ["AddressAllocated", "AddressReleased"]
    assert h.registry.held_by(ServiceKey("shop", "web")) == ()


async def test_a_service_that_never_was_ours_costs_no_write() -> None:
    h = Harness(PUBLIC)

    await h.observe(ServiceKey("shop", "db"), service("db", kind="ClusterIP"))
    await h.observe(ServiceKey("shop", "gone"), None)

    assert h.gateway.statuses == [] and h.gateway.events == []
    assert h.told == [ServiceKey("shop", "db"), ServiceKey("shop", "gone")]


async def test_a_write_refused_as_stale_keeps_the_decision_for_the_next_event() -> None:
    h = Harness(PUBLIC)
    h.gateway.status_failures = [409]

    await h.observe(ServiceKey("shop", "web"), service("web"))
    await h.observe(ServiceKey("shop", "web"), service("web"))

    assert [ingress for _, ingress, _ in h.gateway.statuses] == [("198.18.0.1",)]
    assert h.gateway.reasons() == ["AddressAllocated"]


async def test_an_unexpected_api_error_is_retried_not_raised() -> None:
    h = Harness(PUBLIC)
    h.gateway.status_failures = [500]

    await h.observe(ServiceKey("shop", "web"), service("web"))

    assert h.gateway.statuses == [], "the failed write is retried later, in the background"
    assert h.registry.held_by(ServiceKey("shop", "web")) == ("198.18.0.1",)


async def test_an_older_holder_wins_a_duplicate_and_the_younger_is_told_why() -> None:
    h = Harness(PUBLIC)
    older, younger = service("a", held="198.18.0.3"), service("bbbb", held="198.18.0.3")
    h.controller.rebuild([older, younger], {})

    await h.observe(younger.key, younger)

    [(_, ingress, _)] = h.gateway.statuses
    assert ingress == ("198.18.0.1",)
    [revoked] = [e for e in h.gateway.events if e.reason == "AddressRevoked"]
    assert revoked.warning and "held by the older Service shop/a" in revoked.message


async def test_only_services_gone_from_the_cluster_and_unchanged_since_are_released() -> None:
    h = Harness(PoolSpec("public", ("10.0.0.0/29",), allow_first_last_ips=True))
    names = ["kept", "deleted", "recreated"]
    h.controller.rebuild([service(n, held=f"10.0.0.{i}") for i, n in enumerate(names)], {})
    unseen = h.controller.views.snapshot()
    del unseen[ServiceKey("shop", "kept")]  # the one the cluster's list shows
    h.controller.views.put(service("recreated", held="10.0.0.2"))

    await h.sweeper.sweep(unseen)

    assert h.registry.held_by(ServiceKey("shop", "kept")) == ("10.0.0.0",)
    assert h.registry.held_by(ServiceKey("shop", "deleted")) == ()
    assert h.registry.held_by(ServiceKey("shop", "recreated")) == ("10.0.0.2",)
    assert h.registry.pool_summary("public").allocated == 2


@pytest.mark.parametrize(
    ("labels", "expected"), [({}, "NoMatchingPool"), ({"team": "a"}, "Allocated")]
)
async def test_namespace_labels_decide_pools_with_a_namespace_selector(
    labels: dict[str, str], expected: str
) -> None:
    from lbipam.ipam.selectors import Selector

    team_a = Selector.from_dict({"matchLabels": {"team": "a"}})
    h = Harness(PoolSpec("team-a", ("198.18.1.0/29",), namespace_selector=team_a))
    h.dispatcher.namespace_changed("shop", labels)

    await h.observe(ServiceKey("shop", "web"), service("web"))

    [(_, _, condition)] = h.gateway.statuses
    assert condition is not None and condition["reason"] == expected


async def test_a_service_waiting_only_for_a_pool_to_be_protected_sees_no_failure() -> None:
    h = Harness(PoolSpec("fresh", ("198.18.0.0/29",), protected=False))

    await h.observe(ServiceKey("shop", "web"), service("web"))

    assert h.gateway.statuses == [] and h.gateway.events == []
    assert h.controller.pending == {ServiceKey("shop", "web")}


async def test_every_address_is_claimed_before_the_status_shows_it_and_released_after() -> None:
    h = Harness(PUBLIC)
    await h.observe(ServiceKey("shop", "web"), service("web"))
    assert h.gateway.claim_writes == [("create", "198.18.0.1")]

    await h.observe(ServiceKey("shop", "web"), None)

    assert h.gateway.claim_writes[-1] == ("delete", "198.18.0.1")
    assert h.gateway.claims == {}


async def test_a_claim_whose_create_lost_its_answer_goes_with_its_service() -> None:
    """Seen in an hour's soak under load: the API server stored a claim after the create's
    deadline had passed, the Service was deleted before a retry learned of it, and the
    claim kept its address from everyone until the ten-minute sweep."""
    h = Harness(PUBLIC)
    web = ServiceKey("shop", "web")
    h.gateway.claim_answers_lost = 1
    with contextlib.suppress(TimeoutError):
        await h.observe(web, service("web"))
    assert "198.18.0.1" in h.gateway.claims and h.gateway.statuses == []

    await h.observe(web, None)

    assert h.gateway.claims == {}
    await h.observe(ServiceKey("shop", "api"), service("api"))
    assert h.gateway.statuses[-1][1] == ("198.18.0.1",)


async def test_a_claim_made_while_the_sweep_lists_goes_with_its_service() -> None:
    """Seen in soaks, about once an hour: a Service got its address while the ten-minute
    sweep was listing the claims; the list, taken before, lacked the claim, so the sweep
    forgot it, and when the Service went the claim stayed until the next sweep."""
    h = Harness(PUBLIC)
    web = ServiceKey("shop", "web")

    async def web_arrives() -> None:
        h.gateway.while_listing = None
        await h.observe(web, service("web"))

    h.gateway.while_listing = web_arrives
    await h.controller.claims.collect(h.registry.owners_of)
    assert "198.18.0.1" in h.gateway.claims

    await h.observe(web, None)

    assert h.gateway.claims == {}


async def test_an_address_claimed_by_the_cluster_is_skipped_and_a_static_ask_names_the_holder() -> (
    None
):
    h = Harness(PUBLIC)
    kubernetes = ServiceKey("default", "kubernetes")
    h.gateway.claims["198.18.0.1"] = claim("198.18.0.1", kubernetes, "ipallocator.k8s.io")

    await h.observe(ServiceKey("shop", "web"), service("web"))
    await h.observe(ServiceKey("shop", "fix"), service("fix", loadBalancerIP="198.18.0.1"))

    (_, web, _), (_, fix, condition) = h.gateway.statuses
    assert (web, fix) == (("198.18.0.2",), ())
    assert condition is not None and condition["reason"] == "AddressInUse"
    assert "the ClusterIP of Service default/kubernetes" in condition["message"]


async def test_a_stale_claim_of_a_service_that_let_go_is_replaced() -> None:
    h = Harness(PUBLIC)
    h.gateway.claims["198.18.0.1"] = claim("198.18.0.1", ServiceKey("shop", "old"), age=120)

    await h.observe(ServiceKey("shop", "web"), service("web"))

    [(_, ingress, _)] = h.gateway.statuses
    assert ingress == ("198.18.0.1",)
    parent = h.gateway.claims["198.18.0.1"]["spec"]["parentRef"]["name"]
    assert parent == "web"


async def test_a_claim_another_leader_took_over_is_not_trusted_from_memory() -> None:
    """Found by CI: two replicas leading at once showed one address on two Services. The
    claim this replica remembered had been given back and made again for another Service by
    the other replica, while this one's status write waited for a retry."""
    h = Harness(PUBLIC)
    web, api = ServiceKey("shop", "web"), ServiceKey("shop", "api")
    h.gateway.status_failures = [409]
    await h.observe(web, service("web"))
    assert h.gateway.statuses == [] and "198.18.0.1" in h.gateway.claims
    # The other replica: web's claim goes, and api's is made, with its status shown.
    h.gateway.claims["198.18.0.1"] = claim("198.18.0.1", api)
    h.gateway.statuses.append((api, ("198.18.0.1",), None))

    await h.observe(web, service("web"))

    assert h.gateway.statuses[-1][:2] == (web, ("198.18.0.2",))
    assert h.gateway.claims["198.18.0.1"]["spec"]["parentRef"]["name"] == "api"


async def test_a_service_keeps_its_address_though_its_claim_was_first_refused_to_another() -> None:
    """Found under load: two replicas leading at once. The other replica gave web .1 and
    claimed it; this one, not yet told, chose .1 for api, was refused and blocked .1. When
    web's event showed .1, it took .1 away from web as held by someone else and deleted
    web's claim: the replicas then wrote their decisions over each other's, and one address
    showed on two Services."""
    h = Harness(PUBLIC)
    web, api = ServiceKey("shop", "web"), ServiceKey("shop", "api")
    h.gateway.claims["198.18.0.1"] = claim("198.18.0.1", web)
    h.gateway.statuses.append((web, ("198.18.0.1",), None))
    await h.observe(api, service("api"))
    assert h.gateway.statuses[-1][:2] == (api, ("198.18.0.2",))

    await h.observe(web, service("web", held="198.18.0.1"))

    assert h.gateway.statuses[-1][:2] == (web, ("198.18.0.1",))
    assert "AddressRevoked" not in h.gateway.reasons()
    assert h.gateway.claims["198.18.0.1"]["spec"]["parentRef"]["name"] == "web"


async def test_a_replica_whose_write_lost_to_another_keeps_what_the_other_showed() -> None:
    """The same two replicas: this one decided .3 for web (its .1 blocked) and its write
    lost to the other's, which showed .1 with web's own claim. Writing .3 back would undo
    the other's write and delete web's claim on .1, and the other would write .1 again."""
    h = Harness(PUBLIC)
    web, api = ServiceKey("shop", "web"), ServiceKey("shop", "api")
    h.gateway.claims["198.18.0.1"] = claim("198.18.0.1", web)
    await h.observe(api, service("api"))
    h.gateway.status_failures = [409]
    await h.observe(web, service("web"))
    assert h.registry.held_by(web) == ("198.18.0.3",)
    h.gateway.statuses.append((web, ("198.18.0.1",), None))  # the other replica's write

    await h.observe(web, service("web", held="198.18.0.1"))

    assert h.gateway.statuses[-1][:2] == (web, ("198.18.0.1",))
    assert h.registry.held_by(web) == ("198.18.0.1",)
    assert sorted(h.gateway.claims) == ["198.18.0.1", "198.18.0.2"]
    assert ("delete", "198.18.0.1") not in h.gateway.claim_writes
    h.registry.check()


async def test_a_claim_is_not_released_while_another_replica_shows_it_again() -> None:
    """This replica moved web off .1 and releases .1's claim after its write; meanwhile the
    other replica, which found the claim, wrote .1 back. Deleted, .1 would go to another
    Service while web shows it."""
    h = Harness(PUBLIC)
    web = ServiceKey("shop", "web")
    await h.observe(web, service("web"))
    h.registry.release(web, 0.0)  # this replica's decision let .1 go, and its write showed it
    h.gateway.statuses.append((web, (), None))
    h.gateway.statuses.append((web, ("198.18.0.1",), None))  # the other replica's write

    await h.controller.claims.release(web, ["198.18.0.1"], h.registry.owners_of)

    assert ("delete", "198.18.0.1") not in h.gateway.claim_writes
    assert h.gateway.claims["198.18.0.1"]["spec"]["parentRef"]["name"] == "web"


async def test_a_claim_another_replica_just_made_outlives_our_write_until_its_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by CI: two replicas leading at once showed one address on two Services. This one
    had read web's claim on .1 (the other's, refused to api), wrote web's status with its own
    .3 and deleted the claim as web's own left behind; the other, which had just claimed .1
    for web, wrote web's status with it, and this one gave .1 to another Service."""
    monkeypatch.setattr(claims_module, "CLAIM_GRACE", 1.5)
    h = Harness(PUBLIC)
    web, api, new = ServiceKey("shop", "web"), ServiceKey("shop", "api"), ServiceKey("shop", "new")
    h.gateway.claims["198.18.0.1"] = claim("198.18.0.1", web)  # the other replica's, just made
    await h.observe(api, service("api"))
    await h.observe(web, service("web"))
    assert h.gateway.statuses[-1][:2] == (web, ("198.18.0.3",))

    await h.observe(new, service("new"))

    assert ("delete", "198.18.0.1") not in h.gateway.claim_writes
    assert h.gateway.statuses[-1][:2] == (new, ("198.18.0.4",)), ".1 may be web's any moment"
    assert h.registry.pool_summary("public").allocated == 4, "and is counted as taken"
    # Web kept .3: once its grace is up, the claim on .1 goes and .1 is handed out again.
    await h.sweep_until(lambda: "198.18.0.1" not in h.gateway.claims)
    assert "198.18.0.1" not in h.gateway.claims
    await h.observe(ServiceKey("shop", "late"), service("late"))
    assert h.gateway.statuses[-1][1] == ("198.18.0.1",)


async def test_a_status_comes_to_show_an_address_only_on_a_young_claim_this_replica_made() -> None:
    """The other side of the same race: a claim of web's own, made by another replica and
    not shown yet, may be deleted by it any moment (it made it); web does not take it here."""
    h = Harness(PUBLIC)
    web = ServiceKey("shop", "web")
    h.gateway.claims["198.18.0.1"] = claim("198.18.0.1", web)

    await h.observe(web, service("web"))

    assert h.gateway.statuses[-1][:2] == (web, ("198.18.0.2",))
    assert "198.18.0.1" in h.gateway.claims, "the other replica's, for it to release"


async def test_an_older_service_joining_a_group_brings_the_group_to_its_address() -> None:
    h = Harness(PUBLIC)
    edge = {"lbipam.io/sharing-key": "edge"}
    api, dns = ServiceKey("shop", "api"), ServiceKey("shop", "dns-1")  # api is older
    await h.observe(api, service("api"))
    await h.observe(dns, service("dns-1", annotations=edge, ports=[{"port": 53}]))
    assert [ingress for _, ingress, _ in h.gateway.statuses] == [("198.18.0.1",), ("198.18.0.2",)]

    await h.observe(api, service("api", held="198.18.0.1", annotations=edge))
    for _ in range(100):
        if h.registry.held_by(dns) == ("198.18.0.1",):
            break
        await asyncio.sleep(0.01)

    assert h.gateway.statuses[-1][:2] == (dns, ("198.18.0.1",))
    assert "AddressRevoked" in h.gateway.reasons()[2:]


async def test_a_claim_left_by_a_let_go_whose_write_failed_goes_with_the_next_write() -> None:
    """Found by the chaos machine (seed 1212): a Service passed through another class; the
    write clearing its status got 409, so its claim stayed (the status could still show the
    address). Back in our class it got another address, and the old claim kept .1 blocked,
    counted in its pool, until the ten-minute sweep."""
    h = Harness(PUBLIC)
    web = ServiceKey("shop", "web")
    await h.observe(web, service("web"))
    h.gateway.status_failures = [409]
    elsewhere = service("web", held="198.18.0.1", loadBalancerClass="other.example/lb")
    await h.observe(web, elsewhere)
    assert "198.18.0.1" in h.gateway.claims

    await h.observe(web, service("web", loadBalancerIP="198.18.0.3"))

    assert h.gateway.statuses[-1][:2] == (web, ("198.18.0.3",))
    assert sorted(h.gateway.claims) == ["198.18.0.3"]


async def test_the_claim_on_a_shared_address_passes_to_the_sharer_that_keeps_it() -> None:
    """Found writing a chaos regression: the claim stayed with a Service that had moved on
    (here: gone), so the sharer still holding the address could be refused it."""
    h = Harness(PUBLIC)
    edge = {"lbipam.io/sharing-key": "edge"}
    dns, web = ServiceKey("shop", "dns"), ServiceKey("shop", "web-1")  # dns is older
    udp = [{"port": 53, "protocol": "UDP"}]
    await h.observe(dns, service("dns", annotations=edge, ports=udp))
    await h.observe(web, service("web-1", annotations=edge))
    assert [ingress for _, ingress, _ in h.gateway.statuses] == [("198.18.0.1",)] * 2
    assert h.gateway.claims["198.18.0.1"]["spec"]["parentRef"]["name"] == "dns"
    await h.observe(dns, None)  # the claim's parent goes: web-1 keeps the address

    assert h.gateway.claims["198.18.0.1"]["spec"]["parentRef"]["name"] == "web-1"
    await h.observe(web, service("web-1", held="198.18.0.1", annotations=edge))
    assert h.registry.held_by(web) == ("198.18.0.1",)
    await h.observe(web, None)
    assert h.gateway.claims == {}, "the last holder gives the claim back"


async def test_an_own_claim_gone_stale_is_made_afresh_before_the_status_shows_it() -> None:
    """A replica leading at once may take over a claim whose Service has not shown its
    address for a minute, even between our read of it and our status write; a fresh one
    it leaves alone."""
    h = Harness(PUBLIC)
    web = ServiceKey("shop", "web")
    h.gateway.claims["198.18.0.1"] = claim("198.18.0.1", web, age=120)

    await h.observe(web, service("web"))

    assert h.gateway.claim_writes == [("delete", "198.18.0.1"), ("create", "198.18.0.1")]
    assert h.gateway.statuses[-1][:2] == (web, ("198.18.0.1",))


async def test_a_sharer_the_claim_could_not_pass_to_claims_the_address_itself() -> None:
    h = Harness(PUBLIC)
    edge = {"lbipam.io/sharing-key": "edge"}
    dns, web = ServiceKey("shop", "dns"), ServiceKey("shop", "web-1")  # dns is older
    await h.observe(dns, service("dns", annotations=edge, ports=[{"port": 53}]))
    await h.observe(web, service("web-1", annotations=edge))
    h.gateway.claim_failures = [500]  # the create half of passing the claim fails

    await h.observe(dns, None)
    for _ in range(100):
        if "198.18.0.1" in h.gateway.claims:
            break
        await asyncio.sleep(0.01)

    assert h.gateway.claims["198.18.0.1"]["spec"]["parentRef"]["name"] == "web-1"
    assert h.registry.held_by(web) == ("198.18.0.1",)


async def test_claims_nobody_holds_are_collected_and_holders_without_one_claim_again() -> None:
    h = Harness(PUBLIC)
    h.controller.rebuild([service("web", held="198.18.0.3")], {})
    h.gateway.claims["198.18.0.5"] = claim("198.18.0.5", ServiceKey("shop", "deleted"), age=120)
    odd = claim("198.18.0.6", ServiceKey("shop", "x"))
    odd["spec"]["parentRef"] = {"group": "example.com", "resource": "gateways", "name": "gw"}
    h.gateway.claims["198.18.0.6"] = odd

    report = await h.controller.claims.collect(h.registry.owners_of)

    assert "198.18.0.5" not in h.gateway.claims and report.unclaimed == []
    assert "198.18.0.6" in h.gateway.claims, "a claim lbipam did not make is left alone"
    await h.observe(ServiceKey("shop", "web"), service("web", held="198.18.0.3"))
    assert "198.18.0.3" in h.gateway.claims


async def test_an_address_that_left_every_pool_is_said_revoked_even_with_none_to_replace_it() -> (
    None
):
    """Found by the chaos machine: a shrunk pool with nothing left gave only AllocationFailed."""
    h = Harness(PoolSpec("small", ("198.18.0.9",)))
    key = ServiceKey("shop", "web")
    await h.observe(key, service("web"))
    h.registry.apply_pool(PoolSpec("small", ("198.18.0.9",), exclude=("198.18.0.9",)))

    await h.observe(key, service("web", held="198.18.0.9"))

    (_, ingress, condition) = h.gateway.statuses[-1]
    assert ingress == () and condition is not None and condition["status"] == "False"
    assert h.gateway.reasons()[-2:] == ["AddressRevoked", "AllocationFailed"]
    revoked = next(e for e in h.gateway.events if e.reason == "AddressRevoked")
    assert "198.18.0.9 is no longer in any pool" in revoked.message


@pytest.fixture
def fast_sweeps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sweeps every 10 ms instead of every 10 minutes."""
    monkeypatch.setattr(sweep, "SWEEP_FIRST", 0.01)
    monkeypatch.setattr(sweep, "SWEEP_EVERY", 0.01)


async def test_the_periodic_sweep_releases_a_service_the_cluster_no_longer_lists(
    fast_sweeps: None,
) -> None:
    h = Harness(PUBLIC)
    kept, deleted = ServiceKey("shop", "kept"), ServiceKey("shop", "deleted")
    h.controller.rebuild(
        [service("kept", held="198.18.0.1"), service("deleted", held="198.18.0.2")], {}
    )
    # Deleted while nobody watched: no event came, only the list no longer shows it.
    h.gateway.services = [{"metadata": {"namespace": "shop", "name": "kept"}}]

    await h.sweep_until(lambda: not h.registry.held_by(deleted))

    assert h.registry.held_by(deleted) == ()
    assert h.registry.held_by(kept) == ("198.18.0.1",)


async def test_a_failed_sweep_is_logged_and_the_next_one_runs(
    monkeypatch: pytest.MonkeyPatch, fast_sweeps: None
) -> None:
    h = Harness(PUBLIC)
    h.gateway.claims["198.18.0.5"] = claim("198.18.0.5", ServiceKey("shop", "deleted"), age=120)
    calls = 0
    list_claims = h.gateway.list_claims

    async def flaky(keep: Callable[[dict[str, Any]], ClaimView]) -> list[ClaimView]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("API server restarting")
        return await list_claims(keep)

    monkeypatch.setattr(h.gateway, "list_claims", flaky)
    await h.sweep_until(lambda: "198.18.0.5" not in h.gateway.claims)

    assert calls >= 2 and "198.18.0.5" not in h.gateway.claims


async def test_a_claim_a_cut_off_leader_left_behind_goes_once_past_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by the chaos machine (seed 7104): a leader wrote web's status without .1, then
    lost its term before releasing the claim. The next leader kept the young claim at
    start-up (a write may have been in flight) and nothing looked again for 10 minutes."""
    monkeypatch.setattr(claims_module, "CLAIM_GRACE", 1.5)
    h = Harness(PUBLIC)
    web = ServiceKey("shop", "web")
    h.controller.rebuild([service("web")], {})
    h.gateway.statuses.append((web, (), None))
    h.gateway.claims["198.18.0.1"] = claim("198.18.0.1", web)
    h.controller.claims.rebuild([claim_view(h.gateway.claims["198.18.0.1"])])

    await h.sweep_until(lambda: False, seconds=0.2)
    kept_at_first = "198.18.0.1" in h.gateway.claims
    counted = h.registry.pool_summary("public").allocated
    await h.sweep_until(lambda: "198.18.0.1" not in h.gateway.claims)

    assert kept_at_first, "a claim younger than the grace may be a write in flight"
    assert counted == 1, "and its address is counted taken meanwhile (chaos seed 7404)"
    assert "198.18.0.1" not in h.gateway.claims, "collected long before the next sweep"
    await h.observe(ServiceKey("shop", "api"), service("api"))
    assert h.registry.held_by(ServiceKey("shop", "api")) == ("198.18.0.1",)


async def test_a_sweep_keeps_the_claims_it_knew_and_learns_only_what_changed() -> None:
    """Each sweep relists every claim: the unchanged keep their objects, as a table made anew
    every 10 minutes stepped the leader's RSS up at each sweep (bench/README.md, soak)."""
    h = Harness(PUBLIC)
    web, api, new = ServiceKey("shop", "web"), ServiceKey("shop", "api"), ServiceKey("shop", "new")
    for address, key in (("198.18.0.1", web), ("198.18.0.2", api)):
        h.gateway.claims[address] = claim(address, key)
    claims = h.controller.claims
    claims.rebuild(claim_view(body) for body in h.gateway.claims.values())
    known = claims.known(h.gateway.claims["198.18.0.1"])
    # Meanwhile another replica led: it released .2 and claimed .3 for a new Service.
    del h.gateway.claims["198.18.0.2"]
    h.gateway.claims["198.18.0.3"] = claim("198.18.0.3", new)

    await h.controller.collect_claims(relist=True)

    assert claims.known(h.gateway.claims["198.18.0.1"]) is known
    assert claims.left_behind(web, ()) == ["198.18.0.1"]
    assert claims.left_behind(api, ()) == [], "a claim gone from the cluster is forgotten"
    assert claims.left_behind(new, ()) == ["198.18.0.3"]


async def test_a_service_that_left_our_class_while_nobody_led_frees_its_address() -> None:
    """Found by the chaos machine (seed 3303): the new leader never knew the Service was ours.

    Its claim kept the address from others for the whole term, and the pool counted it.
    """
    h = Harness(PUBLIC)
    moved = ServiceKey("shop", "moved")
    ours = {"type": SERVICE_CONDITION, "status": "True", "reason": "Allocated"}
    # The last term gave it .1 (claim and status), then its class changed while nobody led.
    h.gateway.claims["198.18.0.1"] = claim("198.18.0.1", moved, age=120)
    h.controller.claims.rebuild([claim_view(h.gateway.claims["198.18.0.1"])])  # listed at start
    h.gateway.statuses.append((moved, ("198.18.0.1",), ours))
    await h.observe(ServiceKey("shop", "web"), service("web"))
    assert h.gateway.statuses[-1][1] == ("198.18.0.2",), "its claim still holds .1"

    # Passing through ClusterIP to change class, the API server cleared status.loadBalancer.
    elsewhere = service("moved", loadBalancerClass="other.example/lb")
    await h.observe(moved, replace(elsewhere, condition=ours))

    assert h.gateway.statuses[-1][:2] == (moved, ())
    assert "198.18.0.1" not in h.gateway.claims
    await h.observe(ServiceKey("shop", "new"), service("new"))
    assert h.gateway.statuses[-1][1] == ("198.18.0.1",)
    assert h.registry.pool_summary("public").allocated == 2


async def test_a_prefer_dual_stack_service_gets_its_second_family_when_a_pool_offers_it() -> None:
    """Found by the chaos machine (seed 5505): served in IPv4 only, it never got its IPv6."""
    h = Harness(PUBLIC)
    key = ServiceKey("shop", "dns")
    dns = service("dns", ipFamilyPolicy="PreferDualStack", ipFamilies=["IPv4", "IPv6"])
    await h.observe(key, dns)
    assert h.gateway.statuses[-1][1] == ("198.18.0.1",)
    assert key not in h.controller.pending, "it has an address: not pending"

    h.registry.apply_pool(PoolSpec("public6", ("2001:db8:5::/126",)))
    h.dispatcher.schedule(Next(pending=True, pools_changed=True))  # as the pool controller does
    for _ in range(100):
        if len(h.gateway.statuses[-1][1]) == 2:
            break
        await asyncio.sleep(0.01)

    assert h.gateway.statuses[-1][1] == ("198.18.0.1", "2001:db8:5::")

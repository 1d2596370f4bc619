"""The pool controller against a recording gateway: protection first, status, deletion."""

from __future__ import annotations

from typing import Any

from lbipam.api import FINALIZER
from lbipam.controllers.pools import PoolController
from lbipam.controllers.results import Next
from lbipam.controllers.views import ServiceViews
from lbipam.ipam.registry import RangeKind, Registry
from lbipam.ipam.requests import ServiceKey, ServiceRequest
from lbipam.objects import PoolView, node_addresses, pool_spec, pool_view, service_view
from lbipam.settings import Settings
from tests.unit.fakes import RecordingGateway


def ippool(*finalizers: str, deleting: bool = False, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": "public",
        "uid": "uid-public",
        "generation": 2,
        "resourceVersion": "11",
        "creationTimestamp": "2026-01-01T00:00:00Z",
        "finalizers": list(finalizers),
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:01:00Z"
    return {"metadata": meta, "spec": {"addresses": ["198.18.0.0/29"], **spec}}


class Harness:
    """The pool controller, with the harness standing in for the dispatcher: it records
    what pool changes leave the Services to do."""

    def __init__(self) -> None:
        self.registry = Registry()
        self.gateway = RecordingGateway()
        self.scheduled: list[Next] = []
        self.services = ServiceViews()
        self.pools = PoolController(self.registry, self.gateway, self, self.services)

    def schedule(self, then: Next) -> None:
        self.scheduled.append(then)

    async def observe(self, body: dict[str, Any]) -> None:
        await self.pools.observe("public", (pool_view(body), pool_spec(body)))

    def status(self) -> dict[str, Any]:
        [*_, (_, patch, is_status)] = self.gateway.pool_patches
        assert is_status
        return dict(patch["status"])


def ready(status: dict[str, Any]) -> tuple[str, str]:
    [ready] = [c for c in status["conditions"] if c["type"] == "Ready"]
    return ready["status"], ready["reason"]


async def test_a_new_pool_gets_the_finalizer_before_anything_and_says_protecting() -> None:
    h = Harness()

    await h.observe(ippool())
    [(name, patch, is_status)] = h.gateway.pool_patches
    assert (name, is_status) == ("public", False)
    assert patch == {"metadata": {"finalizers": [FINALIZER], "resourceVersion": "11"}}
    await h.pools.sync("public")

    assert ready(h.status()) == ("False", "Protecting")
    assert h.registry.ensure(ServiceRequest(ServiceKey("a", "web"), "t")).addresses == ()


async def test_once_protected_the_pool_is_ready_and_counts_its_usable_addresses() -> None:
    h = Harness()

    await h.observe(ippool(FINALIZER))
    await h.pools.sync("public")

    status = h.status()
    assert ready(status) == ("True", "Ready")
    assert (status["total"], status["available"], status["observedGeneration"]) == ("6", "6", 2)
    assert all(not patch.get("metadata") for _, patch, _ in h.gateway.pool_patches)


async def test_an_unchanged_status_is_not_written_twice() -> None:
    h = Harness()
    await h.observe(ippool(FINALIZER))
    await h.pools.sync("public")
    written = h.status()
    body = ippool(FINALIZER)
    body["status"] = written
    await h.observe(body)

    await h.pools.sync("public")

    assert len(h.gateway.pool_patches) == 1


async def test_an_edit_seen_while_the_status_is_written_gets_a_status_of_its_own() -> None:
    """Found by a chaos regression in CI: the pool shrunk while its first status was on its
    way, and the status stayed at the old generation until the pool changed again."""
    h = Harness()
    await h.observe(ippool(FINALIZER))
    edited = ippool(FINALIZER, addresses=["198.18.0.0/30"])
    edited["metadata"] |= {"generation": 3, "resourceVersion": "12"}
    write = h.gateway.patch_pool

    async def edited_meanwhile(name: str, patch: Any, *, status: bool) -> None:
        await write(name, patch, status=status)
        if len(h.gateway.pool_patches) == 1:
            await h.observe(edited)

    h.gateway.patch_pool = edited_meanwhile  # type: ignore[method-assign]
    await h.pools.sync("public")
    await h.pools.sync("public")

    assert (h.status()["observedGeneration"], h.status()["total"]) == (3, "2")


async def test_deleting_a_pool_in_use_waits_and_names_the_holders_then_lets_go() -> None:
    h = Harness()
    await h.observe(ippool(FINALIZER))
    web = ServiceKey("shop", "web")
    assert h.registry.ensure(ServiceRequest(web, "t")).addresses == ("198.18.0.1",)

    await h.observe(ippool(FINALIZER, deleting=True))
    await h.pools.sync("public")
    assert h.gateway.reasons() == ["DeletionBlocked"]
    assert "shop/web" in h.gateway.events[0].message
    assert all(not patch.get("metadata") for _, patch, _ in h.gateway.pool_patches)

    h.registry.release(web, 0.0)
    await h.pools.sync("public")
    [*_, (_, patch, is_status)] = h.gateway.pool_patches
    assert not is_status and patch["metadata"]["finalizers"] == []


async def test_a_pool_whose_selector_cannot_be_read_says_so_in_its_status() -> None:
    h = Harness()

    await h.observe(ippool(FINALIZER, serviceSelector={"matchLabels": "web"}))
    await h.pools.sync("public")

    status, reason = ready(h.status())
    assert (status, reason) == ("False", "InvalidSpec")


def test_views_keep_what_the_controller_needs() -> None:
    view = pool_view(ippool(FINALIZER))
    assert view == PoolView("public", "uid-public", 2, False, (FINALIZER,), "11", {})


async def test_a_shrunk_pool_leaves_its_lost_holders_to_the_services_then_every_pending_one() -> (
    None
):
    h = Harness()
    await h.observe(ippool(FINALIZER))
    web = ServiceKey("shop", "web")
    assert h.registry.ensure(ServiceRequest(web, "t")).addresses == ("198.18.0.1",)
    h.scheduled.clear()

    await h.observe(ippool(FINALIZER, addresses=["198.18.0.4/30"]))

    [then] = h.scheduled
    assert then.services == [web], "it lost an address that left every pool"
    assert then.pending and then.pools_changed, "pools changed: pending Services try again"


def node(name: str, *addresses: tuple[str, str]) -> dict[str, Any]:
    entries = [{"type": kind, "address": address} for kind, address in addresses]
    return {"metadata": {"name": name}, "status": {"addresses": entries}}


def test_a_node_s_own_addresses_are_its_internal_and_external_ips_only() -> None:
    body = node(
        "worker-1",
        ("Hostname", "worker-1"),
        ("InternalIP", "198.18.0.3"),
        ("ExternalIP", "2001:db8::3"),
        ("InternalDNS", "worker-1.local"),
        ("InternalIP", "198.18.0.3"),
    )
    assert node_addresses(body) == ("198.18.0.3", "2001:db8::3")
    assert node_addresses({"metadata": {"name": "new"}}) == ()


async def test_a_node_address_in_a_pool_is_never_handed_out_and_the_pool_names_the_node() -> None:
    h = Harness()
    await h.observe(ippool(FINALIZER, addresses=["198.18.0.1-198.18.0.3"]))
    h.pools.reserved_changed(RangeKind.NODE, "worker-1", ("198.18.0.2",))

    granted = [h.registry.ensure(ServiceRequest(ServiceKey("shop", n), "t")) for n in "abc"]

    assert [g.addresses for g in granted] == [("198.18.0.1",), ("198.18.0.3",), ()]
    await h.pools.sync("public")
    [overlap] = [c for c in h.status()["conditions"] if c["type"] == "OverlapsNodeAddress"]
    assert (overlap["status"], overlap["reason"]) == ("True", "Node")
    assert "Node worker-1" in overlap["message"]
    assert h.status()["available"] == "0"


async def test_a_service_holding_a_node_s_new_address_keeps_it_and_is_told_until_it_moves() -> None:
    h = Harness()
    await h.observe(ippool(FINALIZER))
    view = service_view(
        {
            "metadata": {"namespace": "shop", "name": "web", "uid": "uid-web"},
            "spec": {"type": "LoadBalancer"},
        },
        Settings(),
    )
    h.services.put(view)
    assert h.registry.ensure(view.request).addresses == ("198.18.0.1",)

    h.pools.reserved_changed(RangeKind.NODE, "worker-1", ("198.18.0.1",))

    [event] = h.gateway.events
    assert (event.reason, event.warning) == ("ReservedAddressHeld", True)
    assert "198.18.0.1, which Node worker-1 uses itself" in event.message
    assert h.registry.ensure(view.request).addresses == ("198.18.0.1",), "it keeps it"
    h.pools.reserved_changed(RangeKind.NODE, "worker-1", ("198.18.0.1",))
    assert len(h.gateway.events) == 1, "an unchanged address is not reported again"

    h.pools.reserved_changed(RangeKind.NODE, "worker-1", ("198.18.0.5",))
    again = h.registry.ensure(ServiceRequest(ServiceKey("shop", "next"), "t"))
    assert again.addresses == ("198.18.0.2",)

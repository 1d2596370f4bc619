"""The dispatcher's rules, told as stories: what a reconcile leaves runs after it, even when
it fails; pending Services retry oldest first, once per burst."""

from __future__ import annotations

import asyncio
from typing import Any

from lbipam.controllers.claims import AddressClaims
from lbipam.controllers.dispatch import Dispatcher
from lbipam.controllers.results import Next
from lbipam.controllers.services import ServiceController
from lbipam.controllers.views import ServiceViews
from lbipam.ipam.registry import Registry
from lbipam.ipam.requests import ServiceKey
from lbipam.objects import ServiceView, service_view
from lbipam.runtime.metrics import Metrics
from lbipam.settings import Settings
from tests.unit.fakes import RecordingGateway

SETTINGS = Settings.load({"LBIPAM_NAMESPACE": "x"})


def service(name: str, created: str) -> ServiceView:
    body: dict[str, Any] = {
        "metadata": {"namespace": "shop", "name": name, "creationTimestamp": created},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
    }
    return service_view(body, SETTINGS)


class Recording(ServiceController):
    """A Service controller whose reconciles only say what they were asked, and leave
    what the test gives them: the dispatcher is what is under test."""

    def __init__(self, leave: dict[ServiceKey, Next], fail: set[ServiceKey]) -> None:
        gateway = RecordingGateway()
        claims = AddressClaims(gateway, enabled=False)
        super().__init__(Registry(), gateway, Metrics(), ServiceViews(), claims)
        self.leave, self.fail = leave, fail
        self.reconciled: list[ServiceKey] = []

    async def reconcile(self, key: ServiceKey, then: Next) -> None:
        self.reconciled.append(key)
        left = self.leave.pop(key, Next())
        then.requeue(left.services)
        if key in self.fail:
            raise RuntimeError("the API server is restarting")


class Listener:
    def __init__(self) -> None:
        self.told: list[ServiceKey] = []

    async def service_changed(self, key: ServiceKey) -> None:
        self.told.append(key)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_what_a_reconcile_leaves_runs_after_it_even_when_it_failed() -> None:
    a, b, c = ServiceKey("shop", "a"), ServiceKey("shop", "b"), ServiceKey("shop", "c")
    services = Recording({a: Next([c, b, c])}, fail={a})
    listener = Listener()
    dispatcher = Dispatcher(services, listener)

    await dispatcher.service_changed(a, service("a", "2026-01-01T00:00:00Z"))
    await settle()

    assert services.reconciled[:3] == [a, c, b], "in the order recorded, each once"
    assert listener.told == [a], "the policy side hears of the event after its reconcile"
    dispatcher.cancel()  # a's retry, after back-off, is not for this story


async def test_pending_services_retry_oldest_first_once_however_many_results_ask() -> None:
    services = Recording({}, fail=set())
    dispatcher = Dispatcher(services, Listener())
    young, old = service("young", "2026-01-02T00:00:00Z"), service("old", "2026-01-01T00:00:00Z")
    for view in (young, old):
        services.views.put(view)
        services.pending.add(view.key)

    for _ in range(3):
        dispatcher.schedule(Next(pending=True))
    await settle()

    assert services.reconciled == [old.key, young.key]


async def test_one_family_services_retry_only_when_pools_changed() -> None:
    services = Recording({}, fail=set())
    dispatcher = Dispatcher(services, Listener())
    dns = service("dns", "2026-01-01T00:00:00Z")
    services.views.put(dns)
    services.partial.add(dns.key)

    dispatcher.schedule(Next(pending=True))
    await settle()
    assert services.reconciled == [], "a freed address is not worth retrying them"

    dispatcher.schedule(Next(pending=True, pools_changed=True))
    await settle()
    assert services.reconciled == [dns.key]

"""The policy controller against a recording gateway: a Service's ranges → one managed policy."""

from __future__ import annotations

from typing import Any

from lbipam.controllers.policies import PolicyController
from lbipam.controllers.views import ServiceViews
from lbipam.ipam.requests import ServiceKey
from lbipam.objects import service_view
from lbipam.runtime.metrics import Metrics
from lbipam.settings import Settings
from tests.unit.fakes import RecordingGateway

SETTINGS = Settings.load({"LBIPAM_NAMESPACE": "x"})
WEB = ServiceKey("shop", "web")


def web(*ranges: str, kind: str = "LoadBalancer") -> dict[str, Any]:
    return {
        "metadata": {"namespace": "shop", "name": "web", "uid": "uid-web"},
        "spec": {
            "type": kind,
            "selector": {"app": "web"},
            "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
            "externalTrafficPolicy": "Local",
            "loadBalancerSourceRanges": list(ranges),
        },
    }


class Harness:
    def __init__(self) -> None:
        self.views = ServiceViews()
        self.gateway = RecordingGateway()
        self.metrics = Metrics()
        self.policies = PolicyController(self.gateway, self.metrics, SETTINGS, self.views)

    async def service(self, body: dict[str, Any]) -> None:
        self.views.put(service_view(body, SETTINGS))
        await self.policies.service_changed(WEB)


async def test_ranges_make_one_policy_and_an_unchanged_service_writes_nothing_more() -> None:
    h = Harness()

    await h.service(web("198.18.2.0/24"))
    await h.service(web("198.18.2.0/24"))

    assert h.gateway.policy_writes == [("create", "shop", "lbipam-web")]
    policy = h.gateway.policies[("shop", "lbipam-web")]
    assert policy["spec"]["ingress"][0]["from"] == [{"ipBlock": {"cidr": "198.18.2.0/24"}}]
    assert h.metrics.collector_registry.get_sample_value("lbipam_networkpolicies_managed") == 1


async def test_edited_ranges_replace_the_policy_and_removed_ranges_delete_it() -> None:
    h = Harness()
    await h.service(web("198.18.2.0/24"))

    await h.service(web("198.18.3.0/24"))
    await h.service(web())

    assert [verb for verb, _, _ in h.gateway.policy_writes] == ["create", "replace", "delete"]
    assert h.gateway.policies == {}


async def test_a_service_that_is_no_longer_ours_loses_its_policy() -> None:
    h = Harness()
    await h.service(web("198.18.2.0/24"))

    await h.service(web("198.18.2.0/24", kind="ClusterIP"))

    assert h.gateway.policy_writes[-1] == ("delete", "shop", "lbipam-web")


async def test_a_foreign_policy_with_our_name_is_left_alone_and_the_user_is_told() -> None:
    h = Harness()
    h.gateway.policies[("shop", "lbipam-web")] = {"metadata": {"name": "lbipam-web", "uid": "u"}}

    await h.service(web("198.18.2.0/24"))

    assert h.gateway.policy_writes == []
    assert h.gateway.reasons() == ["PolicyNameTaken"]


async def test_a_policy_deleted_by_hand_is_restored() -> None:
    h = Harness()
    await h.service(web("198.18.2.0/24"))
    deleted = h.gateway.policies.pop(("shop", "lbipam-web"))

    await h.policies.policy_changed(deleted, deleted=True)

    assert [verb for verb, _, _ in h.gateway.policy_writes] == ["create", "create"]


async def test_services_that_are_not_ours_cost_nothing() -> None:
    h = Harness()

    await h.service(web("198.18.2.0/24", kind="NodePort"))

    assert h.gateway.policy_writes == [] and h.gateway.events == []

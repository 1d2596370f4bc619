"""Which Services are ours, and what a Service's YAML asks for."""

from __future__ import annotations

from typing import Any

import pytest

from lbipam.ipam.pool import AllocationOrder, PoolSpec
from lbipam.ipam.requests import Port, ServiceKey
from lbipam.objects import is_handled, pool_spec, service_request
from lbipam.settings import Settings

DEFAULT = Settings.load({"LBIPAM_NAMESPACE": "x"})
CLASS_ONLY = Settings.load({"LBIPAM_NAMESPACE": "x", "LBIPAM_DEFAULT_CLASS": "false"})


def service(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "shop",
            "name": "web",
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {"type": "LoadBalancer", **spec},
    }


@pytest.mark.parametrize(
    ("spec", "settings", "handled"),
    [
        ({}, DEFAULT, True),
        ({}, CLASS_ONLY, False),
        ({"loadBalancerClass": "lbipam.io/lb"}, CLASS_ONLY, True),
        ({"loadBalancerClass": "example.com/other"}, DEFAULT, False),
        ({"type": "ClusterIP"}, DEFAULT, False),
    ],
)
def test_which_services_are_ours(spec: dict[str, Any], settings: Settings, handled: bool) -> None:
    assert is_handled(service(**spec), settings) is handled


def test_a_service_request_reads_annotations_spec_and_status() -> None:
    body = service(
        loadBalancerIP="192.168.10.7",
        ipFamilies=["IPv6", "IPv4"],
        ipFamilyPolicy="PreferDualStack",
        ports=[{"port": 53, "protocol": "UDP"}, {"port": 53}],
    )
    body["metadata"]["annotations"] = {
        "lbipam.io/ips": " 192.168.10.7 , 2001:db8::7",
        "lbipam.io/pool": "public,backup",
        "lbipam.io/sharing-key": "dns",
    }
    body["status"] = {"loadBalancer": {"ingress": [{"ip": "192.168.10.7"}, {"hostname": "x"}]}}

    request = service_request(body, {"team": "a"})

    assert request.key == ServiceKey("shop", "web")
    assert request.requested_ips == ("192.168.10.7", "2001:db8::7")
    assert request.pools == ("public", "backup")
    assert request.sharing_key == "dns"
    assert request.ports == frozenset({Port(53, "UDP"), Port(53, "TCP")})
    assert (request.families, request.family_policy) == ((6, 4), "PreferDualStack")
    assert request.held == ("192.168.10.7",)
    assert request.namespace_labels == {"team": "a"}


def test_a_pool_being_deleted_hands_out_nothing_new() -> None:
    body = {
        "metadata": {"name": "public", "deletionTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"addresses": ["10.0.0.0/24"], "priority": 3, "serviceSelector": {}},
    }

    spec = pool_spec(body)

    assert spec.disabled and spec.priority == 3 and spec.auto_assign
    assert spec.service_selector is not None and spec.namespace_selector is None


def test_a_pool_reads_its_allocation_order_and_an_unknown_one_is_its_error() -> None:
    def parsed(order: dict[str, str]) -> PoolSpec:
        return pool_spec(
            {"metadata": {"name": "p"}, "spec": {"addresses": ["10.0.0.0/24"], **order}}
        )

    assert parsed({}).allocation_order is AllocationOrder.LOWEST
    assert parsed({"allocationOrder": "Lowest"}).allocation_order is AllocationOrder.LOWEST
    assert parsed({"allocationOrder": "Random"}).allocation_order is AllocationOrder.RANDOM
    unknown = parsed({"allocationOrder": "Sideways"})
    assert unknown.error == "allocationOrder 'Sideways' is not one of Lowest, Random"
    assert unknown.addresses == (), "an unreadable spec hands out nothing"

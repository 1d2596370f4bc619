"""Which Services are ours, and what a Service's YAML asks for, in lbipam's words or another's."""

from __future__ import annotations

from typing import Any

import pytest

from lbipam.controllers.views import ServiceViews
from lbipam.ipam.pool import AllocationOrder, PoolSpec
from lbipam.ipam.registry import Registry
from lbipam.ipam.requests import Port, Reason, ServiceKey
from lbipam.ipam.reservations import Reservation
from lbipam.objects import is_handled, pool_spec, service_key, service_request, service_view
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


def test_a_pool_reads_its_reservations_and_namespace_limit() -> None:
    def parsed(fields: dict[str, Any]) -> PoolSpec:
        return pool_spec(
            {"metadata": {"name": "p"}, "spec": {"addresses": ["10.0.0.0/24"], **fields}}
        )

    spec = parsed(
        {
            "reservations": [
                {"addresses": ["10.0.0.5"], "namespace": "shop", "service": "web"},
                {"addresses": ["10.0.0.8/30"], "namespace": "blog"},
            ],
            "perNamespaceLimit": 3,
        }
    )
    assert spec.reservations == (
        Reservation(("10.0.0.5",), "shop", "web"),
        Reservation(("10.0.0.8/30",), "blog"),
    )
    assert spec.per_namespace_limit == 3
    assert parsed({}).per_namespace_limit is None and parsed({}).reservations == ()
    assert parsed({"perNamespaceLimit": -1}).error == (
        "perNamespaceLimit -1 must be a whole number of 0 or more"
    )
    assert parsed({"reservations": [{"addresses": ["10.0.0.5"]}]}).error == (
        "reservations[0]: needs addresses and a namespace"
    )


# ---- other controllers' annotations (LBIPAM_FOREIGN_ANNOTATIONS) ---------------------------

BOTH = ("metallb", "cilium")


def annotated(**annotations: str) -> dict[str, Any]:
    body = service()
    body["metadata"]["annotations"] = annotations
    return body


def test_a_service_switched_from_metallb_keeps_asking_for_its_address_pool_and_group() -> None:
    body = annotated(
        **{
            "metallb.io/loadBalancerIPs": "192.168.10.7,2001:db8::7",
            "metallb.io/address-pool": "public",
            "metallb.io/allow-shared-ip": "dns",
        }
    )

    request = service_request(body, foreign=BOTH)

    assert request.requested_ips == ("192.168.10.7", "2001:db8::7")
    assert (request.pools, request.sharing_key, request.invalid) == (("public",), "dns", None)


def test_metallbs_deprecated_names_count_unless_its_current_name_is_there() -> None:
    old = {
        "metallb.universe.tf/loadBalancerIPs": "192.168.10.8",
        "metallb.universe.tf/address-pool": "legacy",
        "metallb.universe.tf/allow-shared-ip": "old",
    }
    assert service_request(annotated(**old), foreign=BOTH).pools == ("legacy",)

    both = {**old, "metallb.io/address-pool": "public", "metallb.io/allow-shared-ip": "new"}
    request = service_request(annotated(**both), foreign=BOTH)

    assert (request.pools, request.sharing_key) == (("public",), "new")
    assert request.requested_ips == ("192.168.10.8",) and request.invalid is None


@pytest.mark.parametrize(
    ("ips", "key"),
    [
        ("lbipam.cilium.io/ips", "lbipam.cilium.io/sharing-key"),
        ("io.cilium/lb-ipam-ips", "io.cilium/lb-ipam-sharing-key"),
    ],
)
def test_a_service_switched_from_cilium_keeps_its_address_and_sharing_key(
    ips: str, key: str
) -> None:
    request = service_request(annotated(**{ips: " 10.0.0.5 ", key: "web"}), foreign=BOTH)

    assert (request.requested_ips, request.sharing_key, request.invalid) == (
        ("10.0.0.5",),
        "web",
        None,
    )


def test_a_service_names_the_other_namespaces_it_consents_to_share_with() -> None:
    body = annotated(
        **{"lbipam.io/sharing-key": "edge", "lbipam.io/sharing-cross-namespace": "blog, post,"}
    )
    request = service_request(body)
    assert (request.share_with, request.invalid) == (frozenset({"blog", "post"}), None)

    anyone = annotated(**{"lbipam.io/sharing-cross-namespace": "*"})
    assert service_request(anyone).share_with == frozenset({"*"})
    assert service_request(annotated()).share_with == frozenset()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("blog,Shop_1", '"Shop_1" is not a namespace name'),
        ("-x,a" + "b" * 63, f'"-x", "a{"b" * 63}" are not namespace names'),
        ("blog/*", '"blog/*" is not a namespace name'),
    ],
)
def test_a_list_of_namespaces_that_are_not_namespace_names_is_an_invalid_request(
    value: str, message: str
) -> None:
    for annotation in (
        "lbipam.io/sharing-cross-namespace",
        "io.cilium/lb-ipam-sharing-cross-namespace",
    ):
        request = service_request(
            annotated(**{"lbipam.io/sharing-key": "edge", annotation: value}), foreign=BOTH
        )
        assert request.invalid is not None
        assert request.invalid.startswith(f"{annotation}: {message}")
        outcome = Registry().ensure(request)
        assert (outcome.reason, outcome.message) == (Reason.INVALID_REQUEST, request.invalid)


@pytest.mark.parametrize(
    "annotation",
    ["lbipam.cilium.io/sharing-cross-namespace", "io.cilium/lb-ipam-sharing-cross-namespace"],
)
def test_a_service_switched_from_cilium_keeps_the_namespaces_it_shares_with(
    annotation: str,
) -> None:
    body = annotated(**{"lbipam.cilium.io/sharing-key": "edge", annotation: "blog,post"})
    request = service_request(body, foreign=BOTH)
    assert (request.sharing_key, request.share_with) == ("edge", frozenset({"blog", "post"}))
    assert service_request(body).share_with == frozenset(), "only when cilium's are honoured"

    spelled = {**body["metadata"]["annotations"], "lbipam.io/sharing-cross-namespace": "post,blog"}
    agreeing = service_request(annotated(**spelled), foreign=BOTH)
    assert (agreeing.share_with, agreeing.invalid) == (frozenset({"blog", "post"}), None)

    stable = {
        "lbipam.cilium.io/sharing-cross-namespace": "blog",
        "io.cilium/lb-ipam-sharing-cross-namespace": "*",
    }
    assert service_request(annotated(**stable), foreign=BOTH).share_with == frozenset({"blog"})


def test_foreign_annotations_are_ignored_unless_their_controller_is_named() -> None:
    body = annotated(**{"metallb.io/address-pool": "public", "lbipam.cilium.io/ips": "10.0.0.5"})
    none = Settings.load({"LBIPAM_NAMESPACE": "x", "LBIPAM_FOREIGN_ANNOTATIONS": "none"})
    cilium = Settings.load({"LBIPAM_NAMESPACE": "x", "LBIPAM_FOREIGN_ANNOTATIONS": "cilium"})

    assert service_request(body).pools == ()
    assert service_view(body, none).request.requested_ips == ()
    assert service_view(body, cilium).request.requested_ips == ("10.0.0.5",)
    assert service_view(body, cilium).request.pools == ()
    assert service_view(body, DEFAULT).request.pools == ("public",)


def test_lbipams_annotation_is_used_when_a_foreign_one_agrees_however_it_is_spelled() -> None:
    body = annotated(
        **{
            "lbipam.io/ips": "10.0.0.5, 2001:db8::5",
            "metallb.io/loadBalancerIPs": "2001:DB8:0::5,10.0.0.5",
            "lbipam.io/pool": "public,backup",
            "metallb.io/address-pool": "",  # empty: asks nothing
        }
    )

    request = service_request(body, foreign=BOTH)

    assert request.requested_ips == ("10.0.0.5", "2001:db8::5")
    assert (request.pools, request.invalid) == (("public", "backup"), None)


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        (
            {"lbipam.io/ips": "10.0.0.5", "metallb.io/loadBalancerIPs": "10.0.0.6"},
            'lbipam.io/ips "10.0.0.5" and metallb.io/loadBalancerIPs "10.0.0.6" disagree',
        ),
        (
            {"lbipam.io/pool": "public", "metallb.universe.tf/address-pool": "private"},
            'lbipam.io/pool "public" and metallb.universe.tf/address-pool "private" disagree',
        ),
        (
            {"lbipam.io/sharing-key": "a", "io.cilium/lb-ipam-sharing-key": "b"},
            'lbipam.io/sharing-key "a" and io.cilium/lb-ipam-sharing-key "b" disagree',
        ),
        (
            {"metallb.io/allow-shared-ip": "a", "lbipam.cilium.io/sharing-key": "b"},
            'metallb.io/allow-shared-ip "a" and lbipam.cilium.io/sharing-key "b" disagree',
        ),
        (
            {
                "lbipam.io/sharing-cross-namespace": "blog",
                "lbipam.cilium.io/sharing-cross-namespace": "*",
            },
            'lbipam.io/sharing-cross-namespace "blog" and '
            'lbipam.cilium.io/sharing-cross-namespace "*" disagree',
        ),
        (
            {"lbipam.cilium.io/ips": "10.0.0.5,10.0.0.x"},
            'lbipam.cilium.io/ips: "10.0.0.x" is not an IPv4 or IPv6 address',
        ),
    ],
)
def test_a_contradiction_is_an_invalid_request_naming_both_annotations(
    annotations: dict[str, str], message: str
) -> None:
    request = service_request(annotated(**annotations), foreign=BOTH)

    assert request.invalid is not None and message in request.invalid
    outcome = Registry().ensure(request)
    assert outcome.reason is Reason.INVALID_REQUEST and message in outcome.message


def test_a_pool_reads_its_release_hold_and_an_unreadable_one_is_its_error() -> None:
    def parsed(hold: str | None) -> PoolSpec:
        spec = {"addresses": ["10.0.0.0/24"]} | ({} if hold is None else {"releaseHold": hold})
        return pool_spec({"metadata": {"name": "p"}, "spec": spec})

    assert parsed(None).release_hold == 0.0
    assert parsed("0s").release_hold == 0.0
    assert parsed("1h30m").release_hold == 5400.0
    unreadable = parsed("ten minutes")
    assert unreadable.error == (
        'releaseHold: "ten minutes" is not a duration like 90s, 10m or 1h30m'
    )


def test_a_service_edited_again_and_again_keeps_one_key_object_in_memory() -> None:
    # What the Service handler does per event: each event's body is parsed anew, yet every
    # table must go on holding the first key, or a Service's key (and its name) would be
    # kept once per edit and table: the soak's leader grew for hours that way.
    views = ServiceViews()
    settings = Settings.load({"LBIPAM_NAMESPACE": "x"})
    first = ServiceKey("shop", "web")
    for version in range(1, 51):
        body = {
            "metadata": {
                "namespace": "shop",
                "name": "web",
                "resourceVersion": str(version),
                "annotations": {"lbipam.io/pool": f"pool-{version}"},
            },
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
        }
        key = views.known(service_key(body))
        views.put(service_view(body, settings, key))
        if version == 1:
            first = key
    view = views.get(first)
    assert view is not None and view.request.pools == ("pool-50",)
    assert view.key is first and view.request.key is first

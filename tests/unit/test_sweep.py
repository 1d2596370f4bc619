"""A Service deleted while nobody watched gives its address back at the next sweep."""

from __future__ import annotations

from kubernetes.aio import client

from lbipam.controllers.pools import PoolStatusWriter
from lbipam.controllers.services import Reconciler
from lbipam.ipam.pool import PoolSpec
from lbipam.ipam.registry import Registry
from lbipam.ipam.requests import ServiceKey
from lbipam.kube.writer import Kube
from lbipam.objects import service_view
from lbipam.runtime.metrics import Metrics
from lbipam.settings import Settings

SETTINGS = Settings.load({"LBIPAM_NAMESPACE": "x"})


def held(name: str, address: str) -> dict[str, object]:
    return {
        "metadata": {"namespace": "shop", "name": name, "creationTimestamp": "2026-01-01T00:00Z"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
        "status": {"loadBalancer": {"ingress": [{"ip": address}]}},
    }


async def test_only_services_gone_from_the_cluster_and_unchanged_since_are_released() -> None:
    registry = Registry()
    # Releasing a Service with no view writes nothing: this client is never used.
    kube = Kube(client.ApiClient(client.Configuration(host="http://127.0.0.1:9")), "x")
    reconciler = Reconciler(registry, kube, Metrics(registry), PoolStatusWriter(registry, kube))
    reconciler.snapshot = [
        service_view(held(name, f"10.0.0.{i}"), SETTINGS, None)
        for i, name in enumerate(["kept", "deleted", "recreated"])
    ]
    reconciler.rebuild([PoolSpec("public", ("10.0.0.0/29",))])
    before = dict(reconciler.views)
    reconciler.views[ServiceKey("shop", "recreated")] = service_view(
        held("recreated", "10.0.0.2"), SETTINGS, None
    )

    await reconciler.sweep(before, {ServiceKey("shop", "kept")})

    assert registry.held_by(ServiceKey("shop", "kept")) == ("10.0.0.0",)
    assert registry.held_by(ServiceKey("shop", "deleted")) == ()
    assert registry.held_by(ServiceKey("shop", "recreated")) == ("10.0.0.2",)
    assert registry.pool_status("public").allocated == 2
    await kube.api.close()  # type: ignore[no-untyped-call]

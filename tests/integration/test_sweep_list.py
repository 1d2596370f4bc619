"""The periodic sweep reads every Service's metadata alone, from the real API server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from kubernetes import client

from lbipam.ha.term import Term
from lbipam.kube.client import Api
from lbipam.kube.credentials import from_kubeconfig
from lbipam.kube.gateway import LIST_PAGE, KubeGateway
from lbipam.objects import service_key
from tests.controlplane import ControlPlane
from tests.kit import create, service_manifest


async def listed(kubeconfig: Path) -> list[dict[str, Any]]:
    api = Api(from_kubeconfig(kubeconfig))
    try:
        return await KubeGateway(api, Term()).list_service_metadata(lambda body: body)
    finally:
        await api.close()


def test_the_sweep_names_every_service_across_pages_and_reads_no_spec(
    control_plane: ControlPlane, core: client.CoreV1Api, namespace: str
) -> None:
    names = [f"web-{n}" for n in range(LIST_PAGE + 5)]  # more than one page
    for name in names:
        create(core, namespace, service_manifest(name))

    bodies = asyncio.run(listed(control_plane.kubeconfig))

    keys = {str(service_key(body)) for body in bodies}
    assert {f"{namespace}/{name}" for name in names} <= keys
    assert all("spec" not in body and "status" not in body for body in bodies), bodies[0]
    assert {body["kind"] for body in bodies} == {"PartialObjectMetadata"}

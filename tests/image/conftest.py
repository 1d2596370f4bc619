"""The image, built once per session; ServiceAccount credentials; containers per test."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client

from tests.controlplane import ControlPlane
from tests.image import Container, Image, build_image, ensure_tools, sweep, write_credentials
from tests.kit import SHORT_LEASE, SYSTEM, service_account_token


@pytest.fixture(scope="session")
def image() -> Image:
    if os.geteuid() != 0:
        pytest.fail("the image tests run podman as root (rootful containers, vfs storage)")
    ensure_tools()
    sweep()
    built = build_image()
    how = f"built in {built.seconds:.0f}s" if built.seconds else "reused (same inputs)"
    print(f"\n{built.name} {how}: {built.added / 1e6:.1f} MB over its base")
    return built


@pytest.fixture(scope="session")
def credentials(
    installed: None,
    control_plane: ControlPlane,
    core: client.CoreV1Api,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """What a kubelet mounts for the Deployment's pods: a token of its ServiceAccount, the CA."""
    folder = tmp_path_factory.mktemp("lbipam") / "serviceaccount"
    ca = control_plane.pki.ca_cert.read_bytes()
    return write_credentials(folder, service_account_token(core), ca, SYSTEM)


Replicas = Callable[[int], list[Container]]


@pytest.fixture
def replicas(
    image: Image, control_plane: ControlPlane, credentials: Path, without_session_operator: None
) -> Iterator[Replicas]:
    """Start n containers of the image, each as a Deployment's pod; removed afterwards."""
    made: list[Container] = []

    def start(n: int) -> list[Container]:
        batch = [Container(image.name, control_plane, credentials, **SHORT_LEASE) for _ in range(n)]
        made.extend(batch)
        for container in batch:
            container.create()
        for container in batch:
            container.start(wait=False)
        for container in batch:
            container.wait_ready()
        return batch

    yield start
    for container in made:
        container.remove()

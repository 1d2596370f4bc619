"""One data plane (two nodes, two clients) per session; pods per test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from kubernetes import client

from tests.controlplane import ControlPlane
from tests.dataplane.cluster import DataPlane
from tests.dataplane.netns import sweep


@pytest.fixture(scope="session")
def dataplane(control_plane: ControlPlane, core: client.CoreV1Api) -> Iterator[DataPlane]:
    if os.geteuid() != 0:
        pytest.fail("the data-plane tests create network namespaces and need root")
    sweep()  # namespaces of sessions that were killed before they could clean up
    plane = DataPlane(control_plane, core)
    yield plane
    plane.close()


@pytest.fixture
def pods(dataplane: DataPlane, namespace: str) -> Iterator[DataPlane]:
    """The data plane, with this test's pods removed afterwards."""
    yield dataplane
    dataplane.remove_pods(namespace)

"""Shared fixtures: one real control plane per test session, a namespace per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client, config

from tests.controlplane import ControlPlane, running_control_plane
from tests.kit import (  # noqa: F401 - fixtures, registered here once for every folder
    crds,
    installed,
    kubectl,
    namespace,
    operator,
    operator_kubeconfig,
    pools,
    without_session_operator,
)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    with running_control_plane() as plane:
        yield plane


@pytest.fixture(scope="session")
def api(control_plane: ControlPlane) -> client.ApiClient:
    """An admin client (sync: the tests are the user's side, not the operator)."""
    return config.new_client_from_config(str(control_plane.kubeconfig))


@pytest.fixture(scope="session")
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture(scope="session")
def custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


@pytest.fixture(scope="session")
def networking(api: client.ApiClient) -> client.NetworkingV1Api:
    return client.NetworkingV1Api(api)

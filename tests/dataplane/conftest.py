"""One data plane (two nodes, two clients) for this folder's tests; pods per test."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client

from tests.controlplane import ControlPlane
from tests.dataplane.checks import REPORT, Backend, serve
from tests.dataplane.cluster import DataPlane
from tests.dataplane.netns import sweep
from tests.kit import Pools


# Package scope: kube-proxy and kube-router stop once this folder is done, instead of syncing
# every Service the rest of the suite makes.
@pytest.fixture(scope="package")
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


@pytest.fixture
def serving(
    core: client.CoreV1Api,
    networking: client.NetworkingV1Api,
    pods: DataPlane,
    pools: Pools,
    namespace: str,
) -> Callable[..., Backend]:
    """`serving(**spec)`: pod "web-0" on node 0 behind Service "web" (see `checks.serve`)."""
    return functools.partial(serve, core, networking, pods, pools, namespace)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not (REPORT.rows or REPORT.timings):
        return
    write = terminalreporter.write_line
    terminalreporter.section("what the packets showed")
    write("| path | scenario | expected | packets showed |")
    write("|---|---|---|---|")
    for row in REPORT.rows:
        write("| " + " | ".join(row) + " |")
    for what, seconds in REPORT.timings:
        write(f"{what}: {seconds:.1f} s")

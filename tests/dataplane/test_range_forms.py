"""The less obvious forms of source ranges, as the policy enforces them on the node port and the
pod IP (the LB IP is kube-proxy's to filter, and it reads these forms its own way)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.dataplane.checks import NODE_PORT, POD_IP, Backend
from tests.dataplane.cluster import DataPlane

pytestmark = pytest.mark.dataplane

FORMS = [
    # (story, how the Service asks, {family: (inside admitted, outside admitted)})
    ("IPv4 ranges only (IPv6 closed)", {"ranges": ["198.18.2.0/24"]}, {4: (1, 0), 6: (0, 0)}),
    (
        "IPv4 open, IPv6 restricted",
        {"ranges": ["0.0.0.0/0", "2001:db8:2::/64"]},
        {4: (1, 1), 6: (1, 0)},
    ),
]


@pytest.mark.parametrize(("story", "request_", "admits"), FORMS, ids=[f[0] for f in FORMS])
def test_source_range_forms(
    serving: Callable[..., Backend],
    pods: DataPlane,
    story: str,
    request_: dict[str, Any],
    admits: dict[int, tuple[int, int]],
) -> None:
    web = serving(**request_)
    web.policy()

    for family, (inside, outside) in admits.items():
        found = {path: web.paths(family)[path] for path in (NODE_PORT, POD_IP)}
        scenario = f"ETP Local, {story}, IPv{family}"
        web.expect(pods.inside, found, dict.fromkeys(found, bool(inside)), f"{scenario}, in range")
        web.expect(pods.outside, found, dict.fromkeys(found, bool(outside)), f"{scenario}, outside")

"""Events go out in the background; a refused one is logged, and why decides how loudly."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from lbipam.ha.term import Term
from lbipam.kube.errors import ApiError
from lbipam.kube.events import EventPoster

WEB = {"apiVersion": "v1", "namespace": "shop", "name": "web", "uid": "u1"}
# As the API server said it in CI.
TERMINATING = (
    '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"events '
    '\\"web.\\" is forbidden: unable to create new content in namespace shop because it is '
    'being terminated","reason":"Forbidden","details":{"name":"web.","kind":"events","causes":'
    '[{"reason":"NamespaceTerminating","message":"namespace shop is being terminated","field":'
    '"metadata.namespace"}]},"code":403}'
)


class Refusing:
    """An API server that refuses every Event with one Status."""

    def __init__(self, status: int, body: str) -> None:
        self.error = ApiError(status, "Forbidden", body)

    async def request(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error


async def _post(api: Refusing) -> None:
    poster = EventPoster(api, Term())  # type: ignore[arg-type]
    poster.post(WEB, "Service", "AddressReleased", "released 198.18.0.1", False)
    await poster.drain()


async def test_an_event_refused_by_rbac_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "lbipam.kube.events")
    await _post(Refusing(403, '{"message": "events is forbidden: User \\"x\\" cannot create"}'))

    [record] = caplog.records
    assert record.levelno == logging.WARNING and "AddressReleased" in record.getMessage()


async def test_an_event_in_a_namespace_being_deleted_is_not_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, "lbipam.kube.events")
    await _post(Refusing(403, TERMINATING))

    [record] = caplog.records
    assert record.levelno == logging.DEBUG

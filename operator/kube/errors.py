"""Reading the API server's answers: errors by status code, bodies as plain JSON."""

from __future__ import annotations

import json
from typing import Any

from kubernetes.aio.client.exceptions import ApiException


def is_status(error: BaseException, *codes: int) -> bool:
    return isinstance(error, ApiException) and error.status in codes


async def read_json(response: Any) -> Any:
    """Raise ApiException for an error response; return the decoded body otherwise.

    The operator asks for raw responses: validating every body into the generated models
    costs more than the decision it feeds.
    """
    data = await response.read()
    if response.status >= 400:
        raise ApiException(status=response.status, reason=response.reason, body=data.decode())
    return json.loads(data) if data else None

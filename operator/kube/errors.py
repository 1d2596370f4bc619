"""The API server's refusals, by status code."""

from __future__ import annotations


class ApiError(Exception):
    """An error status from the API server; `body` is its Status object as text."""

    def __init__(self, status: int, reason: str = "", body: str = "") -> None:
        super().__init__(f"HTTP {status} {reason}: {body[:500]}")
        self.status = status
        self.reason = reason
        self.body = body


def is_status(error: BaseException, *codes: int) -> bool:
    return isinstance(error, ApiError) and error.status in codes

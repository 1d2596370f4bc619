"""A term of leadership: whether this replica may still write to the cluster."""

from __future__ import annotations

import asyncio
import math
import time


class Fenced(Exception):
    """A write was attempted after this replica stopped leading."""


class Term:
    """Writes are allowed until the term ends or its Lease may have run out.

    The Lease check is local and costs nothing: a replica frozen (or partitioned) past its
    renew deadline finds its writes refused the moment it runs again, before it could learn
    from the API server that another replica has taken over.
    """

    def __init__(self, window: float = math.inf) -> None:
        self.ended = asyncio.Event()
        self._window = window
        self._valid_until = time.monotonic() + window

    def renewed(self, at: float) -> None:
        """The Lease was renewed by a request sent at `at` (monotonic).

        A window that has closed stays closed, even if a renewal sent before it closed answers
        after: work fenced meanwhile was dropped, and a term that came back would lead without
        it. The elector starts a new term instead, which rebuilds from the cluster.
        """
        if self.active():
            self._valid_until = max(self._valid_until, at + self._window)

    def active(self) -> bool:
        return not self.ended.is_set() and time.monotonic() < self._valid_until

    def remaining(self) -> float:
        """Seconds until the window closes (0 once the term is over)."""
        return max(0.0, self._valid_until - time.monotonic()) if self.active() else 0.0

    def check(self) -> None:
        """Raise Fenced unless this term may still write."""
        if not self.active():
            raise Fenced("this replica is no longer leading; nothing more is written")

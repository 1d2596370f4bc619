"""Per-object serialisation and retries for the controllers.

Work on one object never overlaps, a failure is retried with back-off instead of waiting for
the object's next change, and nothing runs once this term of leadership is fenced off.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable

from lbipam.background import Background
from lbipam.ha.term import Fenced

RETRY_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
log = logging.getLogger(__name__)


class WorkQueue:
    """Runs work per key, one at a time, retrying failures with back-off."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._locks: defaultdict[Hashable, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._users: defaultdict[Hashable, int] = defaultdict(int)
        self._failures: dict[Hashable, int] = {}
        self._later = Background()

    async def run(self, key: Hashable, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` for `key` alone; on error log it and try again later."""
        lock = self._locks[key]
        self._users[key] += 1
        try:
            async with lock:
                await work()
        except Fenced:
            return
        except Exception as error:
            attempt = self._failures.get(key, 0)
            self._failures[key] = attempt + 1
            delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
            log.warning("%s %s failed (%s); retrying in %.1fs", self.what, key, error, delay)
            self.submit(key, work, delay)
            return
        finally:
            # Drop the lock with its last user, so a churn of objects leaves nothing behind.
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key], self._locks[key]
        self._failures.pop(key, None)

    def submit(
        self, key: Hashable, work: Callable[[], Awaitable[None]], delay: float = 0.0
    ) -> None:
        """Run `work` for `key` soon, outside the caller."""

        async def later() -> None:
            if delay:
                await asyncio.sleep(delay)
            await self.run(key, work)

        self._later.start(later())

    def cancel(self) -> None:
        """End of a term: queued work must not act on this term's decisions."""
        self._later.cancel()

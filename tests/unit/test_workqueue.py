"""The work queue: one piece of work per key at a time, failures retried, nothing after a fence."""

from __future__ import annotations

import asyncio

import pytest

from lbipam.controllers import workqueue
from lbipam.controllers.workqueue import WorkQueue
from lbipam.ha.term import Fenced


async def test_work_on_one_key_never_overlaps_and_other_keys_run_alongside() -> None:
    queue, running, overlaps = WorkQueue("thing"), set[str](), []

    async def work(key: str) -> None:
        if key in running:
            overlaps.append(key)
        running.add(key)
        await asyncio.sleep(0.01)
        running.discard(key)

    await asyncio.gather(*(queue.run(k, lambda k=k: work(k)) for k in ["a", "a", "b", "a"]))

    assert overlaps == []


async def test_a_failure_is_retried_later_and_a_fenced_term_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(workqueue, "RETRY_DELAYS", (0.01,))
    queue, attempts = WorkQueue("thing"), []

    async def flaky() -> None:
        attempts.append("flaky")
        if attempts.count("flaky") < 3:
            raise RuntimeError("API server hiccup")

    async def fenced() -> None:
        attempts.append("fenced")
        raise Fenced("no longer leading")

    await queue.run("a", flaky)
    await queue.run("b", fenced)
    for _ in range(100):
        await asyncio.sleep(0.01)

    assert attempts == ["flaky", "fenced", "flaky", "flaky"]

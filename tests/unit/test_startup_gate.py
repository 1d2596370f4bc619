"""The start-up gate: Kopf's handlers wait until the term is rebuilt, and the rebuild waits
until Kopf has filled its indexes, which its first handler call tells."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from lbipam.runtime.startup import Gate, Indexes
from lbipam.runtime.wiring import Controllers


async def test_handlers_wait_for_the_rebuild_and_the_first_one_says_the_indexes_are_synced() -> (
    None
):
    gate = Gate()
    indexes = Indexes(cast(Any, {}), cast(Any, {}), cast(Any, {}))
    synced = asyncio.create_task(gate.synced())
    gate.hand_over(indexes)
    await asyncio.sleep(0)
    assert not synced.done(), "handed over empty: Kopf has not filled them yet"

    handler = asyncio.create_task(gate.enter())
    assert await synced is indexes
    assert not handler.done() and not gate.ready

    built = cast(Controllers, object())
    gate.open(built)
    assert await handler is built and gate.ready


async def test_a_failed_start_up_fails_the_waiting_handlers_and_ends_readiness() -> None:
    gate = Gate()
    gate.listed.set_result(cast(Controllers, object()))
    handler = asyncio.create_task(gate.enter())
    await asyncio.sleep(0)

    gate.fail(RuntimeError("rebuild failed"))

    with pytest.raises(RuntimeError):
        await handler
    assert not gate.ready

"""StatementBatcher's lanes on a real PostgreSQL: a request that arrives as a lane ends is
still served, by a lane of its own."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from cloud.core.batching import StatementBatcher
from cloud.core.config import Settings
from cloud.core.db import create_engine_for

ANSWER_WITHIN = 30.0  # seconds: far above a statement's round trip on a loaded machine


class _FailsFirst(StatementBatcher[int, int]):
    """Its first statement fails with an error of ours (the lane ends), the next succeed."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.failed = False
        self.releases: list[asyncio.Future[None]] = []

    async def _release(self, connection: AsyncConnection, driver: Any) -> None:
        # Given back in the background: the lane ends in the same loop turn as its batch is
        # settled, the narrowest window for a request to arrive in.
        self.releases.append(asyncio.ensure_future(super()._release(connection, driver)))

    async def _run(self, asks: list[int], driver: Any) -> list[int]:
        if not self.failed:
            self.failed = True
            raise RuntimeError("first statement fails")
        return [await driver.fetchval("SELECT $1::int * 2", ask) for ask in asks]


def test_a_request_made_as_its_lane_ends_gets_a_lane(database_url: str, settings: Settings) -> None:
    """The waiter of a failed batch asks again at once, before the ended lane's done callback
    has run: it must not find the lane still counted and wait for none (it hung before)."""

    async def ask_twice(batcher: _FailsFirst) -> int:
        try:
            await batcher.submit(1)
        except RuntimeError:
            pass
        return await batcher.submit(21)  # in the same task: no loop turn before it asks

    async def run() -> int:
        engine = create_engine_for(database_url, settings)
        batcher = _FailsFirst(engine, 1, 8)
        try:
            return await asyncio.wait_for(ask_twice(batcher), ANSWER_WITHIN)
        finally:
            await batcher.stop()
            await asyncio.gather(*batcher.releases)
            await engine.dispose()

    assert asyncio.run(run()) == 42

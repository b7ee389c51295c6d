"""ManualTriggerBatcher on a real PostgreSQL: requests that wait share one statement, the cap
holds inside a batch, a batch that fails reaches only the request that caused it, and a lane
keeps its connection while requests keep coming."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from cloud.core import batching
from cloud.core.config import Settings
from cloud.core.db import create_engine_for
from cloud.core.errors import ApiError
from cloud.models import AuditEntry, Trigger
from cloud.triggers.batcher import ManualTriggerBatcher
from cloud.triggers.manual import manual_trigger_batcher, request_manual_trigger
from tests.support.factories import Factory, UserWithToken
from tests.support.waiting import async_wait_until

INSTANCE = "instance-under-test"


def _with_batcher(
    database_url: str, settings: Settings, work: Callable[[ManualTriggerBatcher], Coroutine]
) -> Any:
    async def run() -> Any:
        engine = create_engine_for(database_url, settings)
        try:
            batcher = manual_trigger_batcher(engine, settings, INSTANCE)
            result = await work(batcher)
            await batcher.stop()
            return result
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _ask(
    batcher: ManualTriggerBatcher,
    settings: Settings,
    user: UserWithToken,
    device_id: str,
    **kw: Any,
) -> Coroutine:
    return request_manual_trigger(batcher, settings, user, device_id, None, None, **kw)  # type: ignore[arg-type]


def _stored(db: sessionmaker[Session], device_ids: list[str]) -> tuple[int, int]:
    with db() as session:
        triggers = session.scalar(
            sa.select(sa.func.count()).where(Trigger.device_id.in_(device_ids))
        )
        audited = session.scalar(
            sa.select(sa.func.count()).where(AuditEntry.target.in_(device_ids))
        )
    return triggers or 0, audited or 0


def test_waiting_requests_share_a_statement_and_each_gets_its_own_answer(
    database_url: str, settings: Settings, factory: Factory, db: sessionmaker[Session]
) -> None:
    settings = settings.model_copy(
        update={"manual_trigger_batch_connections": 1, "max_open_manual_triggers": 2}
    )
    user = factory.user()
    devices = [factory.device(org_id=user.org_id).device_id for _ in range(6)]
    crowded = devices[0]
    strangers_device = factory.device().device_id

    async def work(batcher: ManualTriggerBatcher) -> tuple[list[Any], int]:
        asks = [_ask(batcher, settings, user, d) for d in devices]
        asks += [_ask(batcher, settings, user, crowded) for _ in range(3)]
        asks.append(_ask(batcher, settings, user, strangers_device))
        answers = await asyncio.gather(*asks, return_exceptions=True)
        return answers, batcher.statements_sent

    answers, statements = _with_batcher(database_url, settings, work)
    # All were asked before the batcher's task first ran: one statement for the ten.
    assert statements == 1
    assert all(a.trigger_id.startswith("trg_") for a in answers[:6])
    # The crowded device had one trigger already: one more fits under the cap of two.
    refusals = [a for a in answers[6:9] if isinstance(a, ApiError)]
    assert [r.status_code for r in refusals] == [429, 429]
    assert isinstance(answers[9], ApiError) and answers[9].status_code == 404
    assert _stored(db, devices) == (7, 7)
    assert _stored(db, [strangers_device]) == (0, 0)


def test_a_failed_batch_is_retried_one_by_one(
    database_url: str, settings: Settings, factory: Factory, db: sessionmaker[Session]
) -> None:
    settings = settings.model_copy(update={"manual_trigger_batch_connections": 1})
    user = factory.user()
    devices = [factory.device(org_id=user.org_id).device_id for _ in range(4)]

    async def work(batcher: ManualTriggerBatcher) -> list[Any]:
        first = asyncio.ensure_future(_ask(batcher, settings, user, devices[0]))
        await asyncio.sleep(0)  # the first goes alone; the rest wait and go together
        # Two requests with one trigger id: the second's INSERT fails, and with it the batch.
        rest = [
            _ask(batcher, settings, user, devices[1], trigger_id="trg_same"),
            _ask(batcher, settings, user, devices[2], trigger_id="trg_same"),
            _ask(batcher, settings, user, devices[3]),
        ]
        return await asyncio.gather(first, *rest, return_exceptions=True)

    answers = _with_batcher(database_url, settings, work)
    failed = [a for a in answers if isinstance(a, BaseException)]
    assert len(failed) == 1 and isinstance(failed[0], asyncpg.UniqueViolationError)
    assert _stored(db, devices) == (3, 3)


@pytest.mark.parametrize("connections", [1, 3])
def test_a_burst_is_stored_whole(
    database_url: str,
    settings: Settings,
    factory: Factory,
    db: sessionmaker[Session],
    connections: int,
) -> None:
    settings = settings.model_copy(
        update={"manual_trigger_batch_connections": connections, "manual_trigger_batch_max": 7}
    )
    user = factory.user()
    devices = [factory.device(org_id=user.org_id).device_id for _ in range(40)]

    async def work(batcher: ManualTriggerBatcher) -> tuple[int, int]:
        answers = await asyncio.gather(*(_ask(batcher, settings, user, d) for d in devices))
        return len({a.trigger_id for a in answers}), batcher.statements_sent

    distinct, statements = _with_batcher(database_url, settings, work)
    assert distinct == 40
    assert statements <= connections + 40 // 7 + 1  # batches of at most 7 once all wait
    assert _stored(db, devices) == (40, 40)


def test_requests_one_after_another_reuse_the_lane_connection_until_it_idles(
    database_url: str,
    settings: Settings,
    factory: Factory,
    db: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lane keeps its pooled connection while requests keep coming (a checkout per
    statement was most of the batcher's CPU at a low rate) and gives it back once idle."""
    monkeypatch.setattr(batching, "LANE_IDLE_SECONDS", 5.0)  # far above a loop turn
    settings = settings.model_copy(update={"manual_trigger_batch_connections": 1})
    user = factory.user()
    devices = [factory.device(org_id=user.org_id).device_id for _ in range(5)]

    async def run() -> tuple[int, int]:
        engine = create_engine_for(database_url, settings)
        checkouts: list[object] = []
        event.listen(engine.sync_engine.pool, "checkout", lambda *args: checkouts.append(args))
        try:
            batcher = manual_trigger_batcher(engine, settings, INSTANCE)
            for device_id in devices:  # each waits for its answer before the next is asked
                await _ask(batcher, settings, user, device_id)
            used = len(checkouts)
            await async_wait_until(lambda: engine.sync_engine.pool.checkedout() == 0, 60.0)
            await batcher.stop()
            return used, batcher.statements_sent
        finally:
            await engine.dispose()

    used, statements = asyncio.run(run())
    assert (used, statements) == (1, 5)
    assert _stored(db, devices) == (5, 5)

"""The recorder's sent mark on the driver: pending triggers become sent at the moment given,
a trigger that already ended stays as it ended, the waiting instances are told, and the
statement commits alone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session, sessionmaker

from cloud.core.config import Settings
from cloud.core.db import create_engine_for, raw_driver
from cloud.hub.delivery import mark_triggers_sent
from cloud.hub.envelopes import delivered_channel
from cloud.models import Trigger, TriggerStatus
from tests.support.captures import make_trigger
from tests.support.factories import Factory
from tests.support.waiting import async_wait_until


@contextlib.asynccontextmanager
async def _driver(engine: AsyncEngine) -> AsyncIterator[Any]:
    """A pooled connection's asyncpg connection, no transaction open on it."""
    async with engine.connect() as connection:
        yield await raw_driver(connection)


def test_pending_triggers_are_marked_sent_and_ended_ones_stay(
    database_url: str, settings: Settings, factory: Factory, db: sessionmaker[Session]
) -> None:
    device = factory.device()
    pending = [make_trigger(db, device.device_id, TriggerStatus.PENDING) for _ in range(2)]
    expired = make_trigger(db, device.device_id, TriggerStatus.EXPIRED)
    at = datetime.now(UTC) - timedelta(seconds=5)

    async def mark() -> bool:
        engine = create_engine_for(database_url, settings)
        try:
            async with _driver(engine) as driver:
                await mark_triggers_sent(driver, [(t, at) for t in [*pending, expired]])
                return driver.is_in_transaction()
        finally:
            await engine.dispose()

    in_transaction = asyncio.run(mark())
    with db() as session:  # another connection sees the marks: committed
        rows = {t: session.get(Trigger, t) for t in [*pending, expired]}
    assert not in_transaction
    assert [(rows[t].status, rows[t].sent_at) for t in pending] == [(TriggerStatus.SENT, at)] * 2
    assert (rows[expired].status, rows[expired].sent_at) == (TriggerStatus.EXPIRED, None)


def test_the_waiting_instances_are_told_in_the_same_statement(
    database_url: str, settings: Settings, factory: Factory, db: sessionmaker[Session]
) -> None:
    """Triggers made on other instances: each waiter hears its ids on its own channel (the
    shared one when unknown), once the marks are committed."""
    device = factory.device()
    triggers = [make_trigger(db, device.device_id, TriggerStatus.PENDING) for _ in range(3)]
    at = datetime.now(UTC)
    waiters = ["inst-a", "inst-a", None]

    async def mark_and_listen() -> dict[str, list[str]]:
        engine = create_engine_for(database_url, settings)
        heard: dict[str, list[str]] = {}
        try:
            async with _driver(engine) as listener:
                for channel in (delivered_channel("inst-a"), delivered_channel(None)):
                    await listener.add_listener(
                        channel, lambda _c, _p, ch, ids: heard.setdefault(ch, []).append(ids)
                    )
                async with _driver(engine) as driver:
                    delivered = list(zip(triggers, waiters, strict=True))
                    await mark_triggers_sent(driver, [(t, at) for t in triggers], delivered)
                await async_wait_until(lambda: len(heard) == 2, settings.db_command_timeout_seconds)
                await listener.reset()  # UNLISTEN before the connection goes back to the pool
        finally:
            await engine.dispose()
        return heard

    heard = asyncio.run(mark_and_listen())
    assert heard == {
        delivered_channel("inst-a"): [f"{triggers[0]},{triggers[1]}"],
        delivered_channel(None): [triggers[2]],
    }
    with db() as session:
        assert {session.get(Trigger, t).status for t in triggers} == {TriggerStatus.SENT}  # type: ignore[union-attr]

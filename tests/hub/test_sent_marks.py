"""The recorder's sent mark on the driver: pending triggers become sent at the moment given,
a trigger that already ended stays as it ended, and the statement commits alone."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from cloud.core.config import Settings
from cloud.core.db import create_engine_for, pooled_driver
from cloud.hub.delivery import mark_triggers_sent
from cloud.models import Trigger, TriggerStatus
from tests.support.captures import make_trigger
from tests.support.factories import Factory


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
            async with pooled_driver(engine) as driver:
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

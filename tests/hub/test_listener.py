"""PgListener's on-demand channels against a real PostgreSQL: heard only while wanted."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cloud.core.config import Settings
from cloud.core.db import create_engine_for
from cloud.hub.listener import PgListener
from tests.support.waiting import async_wait_until

BASE, EVENTS = "test_base", "test_on_demand"
LINGER = 0.3  # seconds an unwanted channel stays heard in this test


async def test_on_demand_channel_is_heard_only_while_wanted(
    database_url: str, settings: Settings, db: sessionmaker[Session]
) -> None:
    engine = create_engine_for(database_url, settings)
    received: list[tuple[str, str]] = []
    started: list[bool] = []

    async def on_reconnect() -> None:
        raise AssertionError("no reconnect in this test")

    listener = PgListener(
        engine,
        (BASE,),
        lambda channel, payload: received.append((channel, payload)),
        on_reconnect,
        ping_seconds=settings.keepalive_seconds,
        on_demand=(EVENTS,),
        on_demand_started=lambda: started.append(True),
        unlisten_after=LINGER,
    )
    deadline = settings.keepalive_seconds * 3

    async def notify_then_mark(payload: str, mark: str) -> None:
        """NOTIFY `payload` on the on-demand channel, then `mark` on the base one: delivered
        in order, so once the mark arrived the payload arrived too, if it was heard."""
        with db() as session:
            session.execute(sa.select(sa.func.pg_notify(EVENTS, payload)))
            session.execute(sa.select(sa.func.pg_notify(BASE, mark)))
            session.commit()
        await async_wait_until(lambda: (BASE, mark) in received, deadline)

    await listener.start()
    try:
        await notify_then_mark("unwanted", "m1")
        assert (EVENTS, "unwanted") not in received
        assert not listener.hears(EVENTS)

        listener.want(EVENTS, True)
        assert await listener.until_heard(EVENTS, deadline)
        assert started == [True]  # what it carried before was missed: the owner resyncs
        await notify_then_mark("wanted", "m2")
        assert (EVENTS, "wanted") in received

        listener.want(EVENTS, False)
        assert listener.hears(EVENTS)  # a reloading page does not make it flap
        await async_wait_until(lambda: not listener.hears(EVENTS), deadline)
        await notify_then_mark("unwanted again", "m3")
        assert (EVENTS, "unwanted again") not in received
    finally:
        await listener.stop()
        await engine.dispose()

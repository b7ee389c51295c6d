"""PgListener's on-demand channels against a real PostgreSQL: heard only while wanted, named
in the connection's application_name while heard, and heard only once the transactions begun
before that name have ended."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cloud.core.config import Settings
from cloud.core.db import create_engine_for
from cloud.hub import listener as listener_module
from cloud.hub.listener import LISTENER_APPLICATION_NAME, PgListener
from tests.support.waiting import async_wait_until

BASE, EVENTS = "test_base", "test_on_demand"
LINGER = 0.3  # seconds an unwanted channel stays heard in this test
MARKED = f"{LISTENER_APPLICATION_NAME} #{EVENTS}"


def _sessions_named(db: sessionmaker[Session], name: str) -> int:
    with db() as session:
        query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"
        return session.scalar(sa.text(query), {"name": name}) or 0


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
        assert _sessions_named(db, MARKED) == 1  # writers NOTIFY it only while so named
        await notify_then_mark("wanted", "m2")
        assert (EVENTS, "wanted") in received

        listener.want(EVENTS, False)
        assert listener.hears(EVENTS)  # a reloading page does not make it flap
        await async_wait_until(lambda: not listener.hears(EVENTS), deadline)
        assert _sessions_named(db, MARKED) == 0
        await notify_then_mark("unwanted again", "m3")
        assert (EVENTS, "unwanted again") not in received
    finally:
        await listener.stop()
        await engine.dispose()


async def test_a_channel_is_heard_once_older_transactions_ended(
    database_url: str,
    settings: Settings,
    db: sessionmaker[Session],
    monkeypatch,  # noqa: ANN001
) -> None:
    """A transaction begun before the listener named the channel may have looked for listeners
    and found none: until it ends, its commit could go unannounced, so the channel does not
    count as heard yet."""
    monkeypatch.setattr(listener_module, "OLDER_TRANSACTIONS_WAIT", 600.0)
    engine = create_engine_for(database_url, settings)

    async def on_reconnect() -> None:
        raise AssertionError("no reconnect in this test")

    listener = PgListener(
        engine,
        (BASE,),
        lambda channel, payload: None,
        on_reconnect,
        ping_seconds=settings.keepalive_seconds,
        on_demand=(EVENTS,),
    )
    deadline = settings.keepalive_seconds * 3
    await listener.start()
    older = db()
    try:
        older.execute(sa.text("SELECT 1"))  # a transaction open from now on
        listener.want(EVENTS, True)
        # The loop must run for the listener to name the channel: poll without blocking it.
        await async_wait_until(lambda: _sessions_named(db, MARKED) == 1, deadline)
        assert not listener.hears(EVENTS)
        older.rollback()
        assert await listener.until_heard(EVENTS, deadline)
    finally:
        older.close()
        await listener.stop()
        await engine.dispose()

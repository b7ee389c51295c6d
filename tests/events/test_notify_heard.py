"""visant_notify_heard() on a real PostgreSQL: a console event is NOTIFYed only while a
session of the database names its channel in its application_name."""

from __future__ import annotations

import select
import time
from collections.abc import Iterator

import psycopg2
import psycopg2.extensions
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cloud.core.database_url import libpq_dsn
from cloud.events.notify import EVENTS_CHANNEL
from cloud.hub.listener import HEARS_MARK
from tests.support.waiting import wait_until

MARK_CHANNEL = "test_mark"
NOTIFY_WAIT = 10.0  # seconds a committed NOTIFY may take to arrive on a loaded machine


class Listening:
    """A plain LISTEN session on the events channel and a mark channel."""

    def __init__(self, database_url: str) -> None:
        self.connection = psycopg2.connect(libpq_dsn(database_url))
        self.connection.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
        self.execute(f"LISTEN {EVENTS_CHANNEL}")
        self.execute(f"LISTEN {MARK_CHANNEL}")
        self.seen: list[tuple[str, str]] = []

    def execute(self, statement: str, *args: str) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(statement, args)

    def heard_event(self, db: sessionmaker[Session], payload: str) -> bool:
        """Send `payload` as an event, then a mark, in one transaction: notifications arrive
        in order, so once the mark is here the event is too, if it was sent."""
        with db() as session:
            session.execute(sa.select(sa.func.visant_notify_heard(EVENTS_CHANNEL, payload)))
            session.execute(sa.select(sa.func.pg_notify(MARK_CHANNEL, payload)))
            session.commit()
        deadline = time.monotonic() + NOTIFY_WAIT
        while (MARK_CHANNEL, payload) not in self.seen:
            assert time.monotonic() < deadline, f"the mark {payload!r} never arrived"
            if select.select([self.connection], [], [], 0.1) != ([], [], []):
                self.connection.poll()
            while self.connection.notifies:
                note = self.connection.notifies.pop(0)
                self.seen.append((note.channel, note.payload))
        return (EVENTS_CHANNEL, payload) in self.seen


@pytest.fixture
def listening(database_url: str) -> Iterator[Listening]:
    session = Listening(database_url)
    yield session
    session.connection.close()


def test_an_event_is_sent_only_while_a_session_names_its_channel(
    listening: Listening, db: sessionmaker[Session]
) -> None:
    assert not listening.heard_event(db, "nobody hears")

    listening.execute("SELECT set_config('application_name', %s, false)", f"x{HEARS_MARK}other")
    assert not listening.heard_event(db, "another channel named")

    longer = f"x{HEARS_MARK}{EVENTS_CHANNEL}_more"
    listening.execute("SELECT set_config('application_name', %s, false)", longer)
    assert not listening.heard_event(db, "a longer name")

    named = f"x{HEARS_MARK}other{HEARS_MARK}{EVENTS_CHANNEL}"
    listening.execute("SELECT set_config('application_name', %s, false)", named)
    assert listening.heard_event(db, "named")

    listening.execute("SELECT set_config('application_name', 'x', false)")
    assert not listening.heard_event(db, "no longer named")


def test_a_session_that_left_stops_counting(
    database_url: str, listening: Listening, db: sessionmaker[Session]
) -> None:
    """The names are PostgreSQL's own view of its sessions: nothing to clean up after a crash."""
    name = f"x{HEARS_MARK}{EVENTS_CHANNEL}"
    named = psycopg2.connect(libpq_dsn(database_url), application_name=name)
    assert listening.heard_event(db, "while it is there")  # any listener gets a sent NOTIFY
    named.close()

    def named_sessions() -> int:
        with db() as session:
            query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"
            return session.scalar(sa.text(query), {"name": name}) or 0

    wait_until(lambda: named_sessions() == 0, NOTIFY_WAIT)  # its backend exits
    assert not listening.heard_event(db, "after it left")

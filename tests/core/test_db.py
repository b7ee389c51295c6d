"""Database helpers: connection failures are recognisable and logged without a traceback;
driver statements join the session's transaction; a kept connection is reused and replaced; a
pooled driver connection survives PostgreSQL's refusals but not a cut or a cancellation."""

from __future__ import annotations

import asyncio
import logging

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import TimeoutError as PoolTimeout

from cloud.core.config import Settings
from cloud.core.db import (
    DatabaseUnavailable,
    KeptConnection,
    create_engine_for,
    create_session_factory,
    driver_statements,
    log_worker_failure,
)

logger = logging.getLogger("tests.worker")


def test_database_outage_logs_one_warning_line(caplog: pytest.LogCaptureFixture) -> None:
    try:
        raise DatabaseUnavailable("OSError: connection refused")
    except DatabaseUnavailable:
        log_worker_failure(logger, "pass %d failed", 3)
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.exc_info is None
    assert record.getMessage() == (
        "pass 3 failed: database unavailable (OSError: connection refused)"
    )


def test_an_exhausted_pool_logs_one_warning_line(caplog: pytest.LogCaptureFixture) -> None:
    try:
        raise PoolTimeout("QueuePool limit of size 1 overflow 0 reached")
    except PoolTimeout:
        log_worker_failure(logger, "pass %d failed", 4)
    [record] = caplog.records
    assert (record.levelno, record.exc_info) == (logging.WARNING, None)
    assert record.getMessage().startswith("pass 4 failed: database busy (QueuePool limit")


def test_other_failures_keep_their_traceback(caplog: pytest.LogCaptureFixture) -> None:
    try:
        raise ValueError("bug")
    except ValueError:
        log_worker_failure(logger, "pass failed")
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None


def test_driver_statements_run_in_the_sessions_transaction(
    database_url: str, settings: Settings
) -> None:
    """Statements sent past SQLAlchemy's adapter (which begins lazily) are still inside the
    session's transaction: held locks last until commit, and a rollback undoes them."""

    async def scenario() -> tuple[bool, int, int]:
        engine = create_engine_for(database_url, settings)
        sessions = create_session_factory(engine)
        try:
            async with sessions() as session:
                async with driver_statements(await session.connection()) as driver:
                    await driver.execute("CREATE TEMP TABLE probe (n int) ON COMMIT PRESERVE ROWS")
                    await driver.execute("INSERT INTO probe VALUES (1)")
                    in_transaction = driver.is_in_transaction()
                await session.rollback()
                async with driver_statements(await session.connection()) as driver:
                    # The rollback took the table with it; a fresh transaction runs here.
                    missing = await driver.fetchval(
                        "SELECT count(*) FROM pg_tables WHERE tablename = 'probe'"
                    )
                    await driver.execute("SELECT pg_advisory_xact_lock(4242)")
                    held = await driver.fetchval(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242"
                    )
                await session.commit()
            return in_transaction, missing, held
        finally:
            await engine.dispose()

    in_transaction, missing, held = asyncio.run(scenario())
    assert in_transaction
    assert missing == 0
    assert held == 1


def test_a_kept_connection_is_reused_replaced_once_closed_and_given_back_when_idle(
    database_url: str, settings: Settings
) -> None:
    """One checkout for repeated uses in autocommit; a connection PostgreSQL closed is replaced
    at the next use, with no error; an idle one goes back to the pool."""

    async def scenario() -> tuple[int, int, int, bool]:
        engine = create_engine_for(database_url, settings)
        pool = engine.sync_engine.pool
        kept = KeptConnection(engine, 0.0, isolation_level="AUTOCOMMIT")
        try:
            first = await kept.get()
            pid = (await first.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
            transactions = {
                (await (await kept.get()).execute(sa.text("SELECT txid_current()"))).scalar_one()
                for _ in range(3)
            }
            reused = pool.checkedout()
            async with engine.connect() as other:
                await other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            deadline = asyncio.get_running_loop().time() + settings.keepalive_seconds * 30
            while not kept.driver.is_closed():  # the driver reads the server's goodbye
                assert asyncio.get_running_loop().time() < deadline, "closed connection unseen"
                await asyncio.sleep(0.02)
            fresh = await kept.get()
            new_pid = (await fresh.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
            await kept.release_if_idle()
            return len(transactions), reused, pool.checkedout(), new_pid != pid
        finally:
            await kept.discard()
            await engine.dispose()

    transactions, reused, after_idle, replaced = asyncio.run(scenario())
    assert transactions == 3  # autocommit: each statement its own transaction
    assert reused == 1
    assert replaced
    assert after_idle == 0

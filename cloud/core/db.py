"""Async engine and sessions for the server (asyncpg); sync engines for scripts (psycopg2)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Dialect, ExceptionContext
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, sessionmaker

from cloud.core.config import Settings
from cloud.core.database_url import async_url, sync_url


class DatabaseUnavailable(Exception):
    """No connection to PostgreSQL could be opened: it is down, restarting or refusing us."""


def log_worker_failure(log: logging.Logger, message: str, *args: object) -> None:
    """Log a background loop's failed pass: one warning line while the database is down or
    every pooled connection is in use (every loop retries each second, so tracebacks would
    flood the log), else the traceback."""
    exc = sys.exc_info()[1]
    if isinstance(exc, DatabaseUnavailable) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        log.warning(message + ": database unavailable (%s)", *args, exc)
    elif isinstance(exc, PoolTimeout):
        log.warning(message + ": database busy (%s)", *args, exc)
    else:
        log.exception(message, *args)


def create_engine_for(url: str, settings: Settings) -> AsyncEngine:
    engine = create_async_engine(
        async_url(url),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        # No pre-ping: on asyncpg it is three round trips (BEGIN, ";", ROLLBACK) per checkout,
        # as much as a manual trigger's own work. A connection PostgreSQL closed (restart,
        # terminated backend) is seen closed by asyncpg without a round trip; see below.
        pool_pre_ping=False,
        pool_timeout=settings.db_pool_timeout_seconds,
        connect_args={
            "timeout": settings.db_connect_timeout_seconds,
            "command_timeout": settings.db_command_timeout_seconds,
        },
    )
    event.listen(engine.sync_engine, "do_connect", _connect_or_unavailable)
    event.listen(engine.sync_engine, "handle_error", _timed_out_is_unavailable)
    event.listen(engine.sync_engine.pool, "checkout", _refuse_closed_connection)
    return engine


def _refuse_closed_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection whose socket the server closed is replaced, at no round trip."""
    driver = getattr(dbapi_connection, "driver_connection", None)
    if driver is not None and driver.is_closed():
        raise DisconnectionError("connection closed by the server")


def _connect_or_unavailable(
    dialect: Dialect, _record: Any, cargs: list[Any], cparams: dict[str, Any]
) -> Any:
    # With the server down asyncpg raises a bare OSError or TimeoutError (SQLAlchemy wraps only
    # DBAPI errors), types that a full disk or an outbound call raise too. One type of our own
    # lets a request fail as 503 "database unavailable", not 500, while PostgreSQL restarts.
    try:
        return dialect.connect(*cargs, **cparams)
    except Exception as exc:
        raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc


def _timed_out_is_unavailable(context: ExceptionContext) -> Exception | None:
    """A statement past its command timeout: the link to PostgreSQL may be silently dead (no
    FIN, no RST), so the connection is dropped, not pooled again, and the request is a 503.
    asyncpg raises a bare TimeoutError, which SQLAlchemy would pass on as is (a 500)."""
    if isinstance(context.original_exception, TimeoutError):
        context.is_disconnect = True
        return DatabaseUnavailable(f"statement timed out: {context.original_exception}")
    return None


# What the driver raises when the database goes away under a statement sent past SQLAlchemy.
_DRIVER_CONNECTION_LOST = (
    TimeoutError,  # past the command timeout: the link may be silently dead
    OSError,
    asyncpg.PostgresConnectionError,  # ConnectionDoesNotExistError: it was cut mid-query
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, cannot connect now
    asyncpg.InterfaceError,  # the connection is closed (else a misuse, re-raised)
    # The driver lost track of the protocol: seen when the server ended the backend while
    # the connection sat idle ("cannot switch to state ..."); the connection is unusable.
    asyncpg.exceptions.InternalClientError,
)


@contextlib.asynccontextmanager
async def driver_statements(
    connection: AsyncConnection, begin: bool = True, driver: Any = None
) -> AsyncIterator[Any]:
    """The asyncpg connection under ``connection``, for statements sent past SQLAlchemy (hot
    paths), inside the connection's transaction (begun here if it was not). A timeout or a
    lost connection there is handled as SQLAlchemy would have: the connection is invalidated,
    not pooled again, and the request fails as 503.

    ``begin=False`` is for one statement that is atomic by itself: it joins the transaction
    when one is open, else commits alone (one round trip instead of BEGIN, it, COMMIT). With
    it, ``driver`` is that connection's `raw_driver` when the caller already holds it (each
    lookup is a greenlet hop, a visible share of a kept connection's statement)."""
    if begin or driver is None:
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
    assert driver is not None
    try:
        if begin and (adapter := raw.dbapi_connection)._transaction is None:
            # SQLAlchemy's asyncpg adapter sends BEGIN lazily, before its own first statement;
            # statements sent past it would each commit alone (an advisory xact lock released
            # at once, a rollback undoing nothing). Begun here and handed to the adapter (as
            # its own BEGIN would be), the transaction is the session's to commit or roll back.
            transaction = driver.transaction()
            await transaction.start()
            adapter._transaction = transaction
        yield driver
    except _DRIVER_CONNECTION_LOST as exc:
        if isinstance(exc, asyncpg.InterfaceError) and not driver.is_closed():
            raise  # a misuse of the driver, not the database going away
        await connection.invalidate(exc)
        raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc


async def raw_driver(connection: AsyncConnection) -> Any:
    """The asyncpg connection under `connection` (for as long as it stays checked out)."""
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    return driver


class KeptConnection:
    """One pooled connection kept between uses while they keep coming, for a loop that sends
    a statement every few milliseconds: a checkout and check-in through SQLAlchemy's pool cost
    ~120 us of CPU, as much as a small statement. One PostgreSQL closed meanwhile is replaced
    at the next `get`; `release_if_idle` gives it back to the pool."""

    def __init__(self, engine: AsyncEngine, idle_seconds: float, **execution_options: Any):
        self._engine = engine
        self._idle_seconds = idle_seconds
        self._execution_options = execution_options
        self._connection: AsyncConnection | None = None
        self.driver: Any = None  # the asyncpg connection under the one `get` returned
        self._used_at = 0.0

    async def get(self) -> AsyncConnection:
        if self._connection is not None and self.driver.is_closed():
            await self.discard()
        if self._connection is None:
            connection = self._engine.connect()
            await connection.start()
            if self._execution_options:
                await connection.execution_options(**self._execution_options)
            self.driver = await raw_driver(connection)
            self._connection = connection
        self._used_at = asyncio.get_running_loop().time()
        return self._connection

    async def discard(self, broken: bool = False) -> None:
        """Give the connection back now; `broken` (an error or a timeout on it): invalidated,
        not pooled again."""
        connection, self._connection, self.driver = self._connection, None, None
        if connection is None:
            return
        if broken:
            await connection.invalidate()
        await connection.close()

    async def release_if_idle(self) -> None:
        if (
            self._connection is not None
            and asyncio.get_running_loop().time() - self._used_at >= self._idle_seconds
        ):
            await self.discard()


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def create_sync_session_factory(url: str) -> sessionmaker[Session]:
    """For scripts and tests: a psycopg2 engine on the same database."""
    engine = sa.create_engine(sync_url(url), pool_pre_ping=True)
    return sessionmaker(engine, expire_on_commit=False)

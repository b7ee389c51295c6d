"""One dedicated LISTEN connection per instance, reconnected with backoff after errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud.core.worker import Worker
from cloud.metrics.registry import LISTENER_RECONNECTS

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0  # seconds
PING_TIMEOUT = 5.0  # seconds
BACKOFF_FIRST = 0.2  # seconds
BACKOFF_MAX = 10.0  # seconds
LISTENER_APPLICATION_NAME = "visant-listener"  # visible in pg_stat_activity

NotificationHandler = Callable[[str, str], None]
ReconnectHandler = Callable[[], Awaitable[None]]


class PgListener(Worker):
    """Delivers NOTIFY payloads of `channels` to `on_notification` until stopped.

    The connection is not from the pool: LISTEN is session state, and a pooled connection would
    be shared or recycled under us. After any connection loss notifications may have been
    missed, so `on_reconnect` runs once the new connection listens again.
    """

    name = "visant-listener"
    stop_grace = 2.0  # seconds a stop waits for a connect or ping in flight

    def __init__(
        self,
        engine: AsyncEngine,
        channels: Sequence[str],
        on_notification: NotificationHandler,
        on_reconnect: ReconnectHandler,
        ping_seconds: float,
        application_name: str = LISTENER_APPLICATION_NAME,
    ) -> None:
        super().__init__()
        self._application_name = application_name
        self._engine = engine
        self._channels = tuple(channels)
        self._on_notification = on_notification
        self._on_reconnect = on_reconnect
        self._ping_seconds = ping_seconds
        self._ready = asyncio.Event()
        self.connects = 0
        self.connected = False  # listening now (for /health)

    async def start(self, ready_timeout: float = CONNECT_TIMEOUT) -> None:
        """Start listening; returns after the first connection attempt (or the timeout)."""
        await super().start()
        await self.wait_stop_or(self._ready, ready_timeout)

    async def run(self) -> None:
        backoff = BACKOFF_FIRST
        while not self.stopping:
            connection: asyncpg.Connection | None = None
            try:
                connection = await self._connect()
                self.connected = True
                if self.connects > 0:
                    LISTENER_RECONNECTS.inc()
                    await self._on_reconnect()
                self.connects += 1
                self._ready.set()
                backoff = BACKOFF_FIRST
                await self._watch(connection)
            except Exception as exc:  # noqa: BLE001 - a database error must not end listening
                logger.warning("listener connection failed: %s; retrying in %.1fs", exc, backoff)
                self._ready.set()  # start() returns after the first attempt, failed or not
                await self.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            finally:
                self.connected = False
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(connection.close(), PING_TIMEOUT)

    async def _connect(self) -> asyncpg.Connection:
        dialect = self._engine.dialect
        args, params = dialect.create_connect_args(self._engine.url)
        params = {k: v for k, v in params.items() if k not in {"prepared_statement_cache_size"}}
        params["timeout"] = CONNECT_TIMEOUT
        params["server_settings"] = {"application_name": self._application_name}
        connection: asyncpg.Connection = await asyncpg.connect(*args, **params)
        for channel in self._channels:
            await connection.add_listener(channel, self._dispatch)
        return connection

    def _dispatch(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        try:
            self._on_notification(channel, payload)
        except Exception:  # noqa: BLE001 - one bad payload must not kill the connection
            logger.exception("notification on %s not handled", channel)

    async def _watch(self, connection: asyncpg.Connection) -> None:
        """Return on stop; raise when the connection stops answering."""
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _conn: lost.set())
        while not self.stopping:
            await self.wait_stop_or(lost, self._ping_seconds)
            if self.stopping:
                return
            if lost.is_set() or connection.is_closed():
                raise ConnectionError("listener connection closed")
            await connection.fetchval("SELECT 1", timeout=PING_TIMEOUT)

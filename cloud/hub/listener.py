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
UNLISTEN_AFTER_SECONDS = 30.0  # an on-demand channel unwanted this long is no longer heard
HEARS_MARK = " #"  # application_name word per on-demand channel heard: " #visant_events"
OLDER_TRANSACTIONS_WAIT = 2.0  # seconds a new mark waits for transactions begun before it
OLDER_TRANSACTIONS_POLL = 0.01  # seconds

NotificationHandler = Callable[[str, str], None]
ReconnectHandler = Callable[[], Awaitable[None]]


class PgListener(Worker):
    """Delivers NOTIFY payloads of `channels` to `on_notification` until stopped.

    The connection is not from the pool: LISTEN is session state, and a pooled connection would
    be shared or recycled under us. After any connection loss notifications may have been
    missed, so `on_reconnect` runs once the new connection listens again.

    `on_demand` channels are heard only while someone wants them (`want`): every instance
    would otherwise receive and parse every payload of a busy channel nobody here reads. One
    unwanted for `unlisten_after` seconds is dropped (a reloading page does not flap it);
    `on_demand_started` runs when one starts being heard, as what it carried before was
    missed. The connection's application_name names the on-demand channels heard, and
    writers NOTIFY those only while some listener names them (visant_notify_heard(),
    migration 0009_events_when_heard); a channel counts as heard once the transactions that
    began before its name was set (and may not have seen it) have ended.
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
        on_demand: Sequence[str] = (),
        on_demand_started: Callable[[], None] | None = None,
        unlisten_after: float = UNLISTEN_AFTER_SECONDS,
    ) -> None:
        super().__init__()
        self._application_name = application_name
        self._engine = engine
        self._channels = tuple(channels)
        self._on_demand = frozenset(on_demand)
        self._on_demand_started = on_demand_started
        self._unlisten_after = unlisten_after
        self._wanted: set[str] = set()
        self._unwanted_since: dict[str, float] = {}  # channel -> loop time it became unwanted
        self._heard: set[str] = set()  # on-demand channels listened on the current connection
        self._wake = asyncio.Event()
        self._heard_changed = asyncio.Condition()
        self._on_notification = on_notification
        self._on_reconnect = on_reconnect
        self._ping_seconds = ping_seconds
        self._ready = asyncio.Event()
        self.connects = 0
        self.connected = False  # listening now (for /health)

    def want(self, channel: str, wanted: bool) -> None:
        """Start (or, after a while, stop) hearing the on-demand `channel`."""
        if channel not in self._on_demand:
            raise ValueError(f"{channel} is not an on-demand channel")
        if wanted:
            self._wanted.add(channel)
            self._unwanted_since.pop(channel, None)
        elif channel in self._wanted:
            self._wanted.discard(channel)
            self._unwanted_since[channel] = asyncio.get_running_loop().time()
        self._wake.set()

    def hears(self, channel: str) -> bool:
        """Whether notifications of `channel` reach this listener now."""
        return self.connected and (channel in self._channels or channel in self._heard)

    async def until_heard(self, channel: str, wait_seconds: float) -> bool:
        """Wait (up to `wait_seconds`) until `channel` is heard; at once False while disconnected
        (the reconnect's `on_reconnect` then covers what is missed)."""
        async with self._heard_changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._heard_changed.wait_for(lambda: self.hears(channel) or not self.connected),
                    wait_seconds,
                )
        return self.hears(channel)

    async def _announce_heard(self) -> None:
        async with self._heard_changed:
            self._heard_changed.notify_all()

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
                await self._announce_heard()
                if self.connects > 0:
                    LISTENER_RECONNECTS.inc()
                    await self._on_reconnect()
                elif self._heard and self._on_demand_started is not None:
                    self._on_demand_started()  # wanted before the first connection
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
        self._heard = set()
        for channel in self._channels:
            await connection.add_listener(channel, self._dispatch)
        for channel in tuple(self._wanted):
            await connection.add_listener(channel, self._dispatch)
        if self._wanted:
            await self._mark_heard(connection, set(self._wanted))
        return connection

    async def _mark_heard(self, connection: asyncpg.Connection, channels: set[str]) -> None:
        """Name `channels` in the application_name (LISTENed before, unLISTENed after) and
        count them as heard once older transactions ended (or after a bounded wait)."""
        name = self._application_name + "".join(HEARS_MARK + c for c in sorted(channels))
        marked_at = await connection.fetchval(
            "SELECT clock_timestamp() FROM set_config('application_name', $1, false)", name
        )
        if channels - self._heard:
            await _wait_for_transactions_before(connection, marked_at)
        self._heard = channels

    async def _reconcile(self, connection: asyncpg.Connection) -> None:
        """LISTEN to on-demand channels now wanted; UNLISTEN those unwanted long enough."""
        started = self._wanted - self._heard
        for channel in started:
            await connection.add_listener(channel, self._dispatch)
        now = asyncio.get_running_loop().time()
        stopped = {
            channel
            for channel in self._heard - self._wanted
            if now - self._unwanted_since.get(channel, now) >= self._unlisten_after
        }
        if started or stopped:
            await self._mark_heard(connection, (self._heard | started) - stopped)
        for channel in stopped:
            await connection.remove_listener(channel, self._dispatch)
        if started:
            await self._announce_heard()
            if self._on_demand_started is not None:
                self._on_demand_started()

    def _dispatch(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        try:
            self._on_notification(channel, payload)
        except Exception:  # noqa: BLE001 - one bad payload must not kill the connection
            logger.exception("notification on %s not handled", channel)

    async def _watch(self, connection: asyncpg.Connection) -> None:
        """Return on stop; raise when the connection stops answering."""
        lost = asyncio.Event()

        def on_lost(_conn: Any) -> None:
            lost.set()
            self._wake.set()

        connection.add_termination_listener(on_lost)
        loop = asyncio.get_running_loop()
        next_ping = loop.time() + self._ping_seconds
        while not self.stopping:
            self._wake.clear()  # before: a want() during the reconcile wakes the wait below
            await self._reconcile(connection)
            wake_at = [next_ping]
            wake_at += [
                self._unwanted_since.get(channel, loop.time()) + self._unlisten_after
                for channel in self._heard - self._wanted
            ]
            await self.wait_stop_or(self._wake, max(0.0, min(wake_at) - loop.time()))
            if self.stopping:
                return
            if lost.is_set() or connection.is_closed():
                raise ConnectionError("listener connection closed")
            if loop.time() >= next_ping:
                await connection.fetchval("SELECT 1", timeout=PING_TIMEOUT)
                next_ping = loop.time() + self._ping_seconds


async def _wait_for_transactions_before(connection: asyncpg.Connection, moment: Any) -> None:
    """Until no other session of the database has a transaction begun before `moment`:
    one may have looked for listeners before the mark, and would commit unannounced. Bounded
    by OLDER_TRANSACTIONS_WAIT (a session idle in a transaction must not stall the console);
    sessions of other roles show no xact_start without pg_read_all_stats and are not waited
    for."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + OLDER_TRANSACTIONS_WAIT
    while await connection.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND xact_start < $1",
        moment,
    ):
        if loop.time() >= deadline:
            logger.info("listener: transactions older than its mark still open; not waiting")
            return
        await asyncio.sleep(OLDER_TRANSACTIONS_POLL)

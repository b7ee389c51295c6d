"""The delivery worker: claims due notifications and sends each in its own task.

Every instance runs one. It keeps up to `max_in_flight` sends going and claims more as soon as
one ends, so a receiver that takes seconds holds one slot, not a whole batch: other channels'
notifications keep flowing past it. It wakes on the outbox NOTIFY (new rows, any instance),
when a send ends, when a retry falls due, and every `poll` seconds (rows whose lease passed).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cloud.alerts.outbox import (
    ALERTS_CHANNEL,
    AttemptResult,
    Claimed,
    claim_due,
    record_attempt,
    retry_delay,
)
from cloud.alerts.senders import Senders
from cloud.captures.storage import SnapshotStore
from cloud.core.config import Settings
from cloud.core.db import log_worker_failure
from cloud.core.worker import Worker
from cloud.hub.listener import PgListener
from cloud.models import AttemptOutcome, NotificationState

logger = logging.getLogger(__name__)

LISTENER_PING_SECONDS = 30.0
STOP_SENDS_GRACE = 2.0  # seconds in-flight sends get at shutdown; the rest retry after the lease
SEND_MARGIN = 5.0  # seconds past the send timeout before a send is abandoned


class DeliveryWorker(Worker):
    name = "alert-delivery"
    stop_grace = STOP_SENDS_GRACE + 2.0

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        session_factory: async_sessionmaker[AsyncSession],
        store: SnapshotStore,
    ) -> None:
        super().__init__()
        self._settings = settings
        self._sessions = session_factory
        self._store = store
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._deadline = settings.alerts_send_timeout_seconds + SEND_MARGIN
        # A claimed row comes back to others only after this: longer than any send may take.
        self._lease = 2 * self._deadline
        self._listener = PgListener(
            engine,
            [ALERTS_CHANNEL],
            lambda _channel, _payload: self._wake.set(),
            self._on_reconnect,
            LISTENER_PING_SECONDS,
            # Its own name: the hub's listener is the one tools and tests look for by name.
            application_name="visant-alerts-listener",
        )
        self.delivered = 0  # counters for logs, tests and the benchmark
        self.failed_attempts = 0

    async def _on_reconnect(self) -> None:
        self._wake.set()  # notifications may have been missed while disconnected

    async def start(self) -> None:
        await self._listener.start()
        await super().start()

    async def stop(self) -> None:
        await super().stop()
        await self._listener.stop()

    async def run(self) -> None:
        limit = self._settings.alerts_max_in_flight
        timeout = httpx.Timeout(self._settings.alerts_send_timeout_seconds)
        pool = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="alert-send")
        async with httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=limit * 2, max_keepalive_connections=limit),
        ) as http:
            senders = Senders(self._settings, self._store, http, pool)
            try:
                await self._loop(senders, limit)
            finally:
                await self._finish_sends()
                pool.shutdown(wait=False, cancel_futures=True)

    async def _loop(self, senders: Senders, limit: int) -> None:
        while not self.stopping:
            self._wake.clear()
            free = limit - len(self._in_flight)
            claimed: list[Claimed] = []
            if free > 0:
                try:
                    async with self._sessions() as session:
                        claimed = await claim_due(session, free, self._lease)
                        await session.commit()
                except Exception:  # noqa: BLE001 - a database error must not end delivery
                    log_worker_failure(logger, "claiming notifications failed; retrying")
                    await self.wait(self._settings.alerts_delivery_poll_seconds)
                    continue
            for item in claimed:
                task = asyncio.create_task(self._deliver(senders, item), name="alert-send")
                self._in_flight.add(task)
                task.add_done_callback(self._send_done)
            if free > 0 and len(claimed) == free:
                continue  # there may be more due: claim again once a slot frees
            await self.wait_stop_or(self._wake, self._settings.alerts_delivery_poll_seconds)

    def _send_done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()

    async def _finish_sends(self) -> None:
        if self._in_flight:
            _, pending = await asyncio.wait(set(self._in_flight), timeout=STOP_SENDS_GRACE)
            for task in pending:
                task.cancel()  # claimed rows come back after their lease: nothing is lost
            if pending:
                await asyncio.wait(pending, timeout=1.0)

    async def _deliver(self, senders: Senders, item: Claimed) -> None:
        started, began = datetime.now(UTC), time.monotonic()
        try:
            result = await asyncio.wait_for(senders.send(item), self._deadline)
        except TimeoutError:
            result = AttemptResult(
                AttemptOutcome.FAILED,
                started,
                (time.monotonic() - began) * 1000,
                error=f"timeout after {self._deadline:g} s",
            )
        except Exception as exc:  # noqa: BLE001 - recorded as a failed attempt
            logger.exception("notification %s send failed", item.notification_id)
            result = AttemptResult(
                AttemptOutcome.FAILED,
                started,
                (time.monotonic() - began) * 1000,
                error=f"{type(exc).__name__}: {exc}"[:500],
            )
        retry_in = retry_delay(
            item.attempt,
            self._settings.alerts_retry_base_seconds,
            self._settings.alerts_retry_max_seconds,
        )
        try:
            async with self._sessions() as session:
                state = await record_attempt(
                    session, item, result, self._settings.alerts_max_attempts, retry_in
                )
                await session.commit()
        except IntegrityError:
            logger.info("notification %s gone (channel deleted)", item.notification_id)
            return
        except Exception:  # noqa: BLE001 - the lease brings the row back for another try
            log_worker_failure(logger, "recording notification %s failed", item.notification_id)
            return
        self._log(item, result, state, retry_in)

    def _log(
        self, item: Claimed, result: AttemptResult, state: NotificationState, retry_in: float
    ) -> None:
        if state is NotificationState.DELIVERED:
            self.delivered += 1
            logger.info(
                "notification %s delivered to channel %s (attempt %d, %.0f ms)",
                item.notification_id,
                item.channel_id,
                item.attempt,
                result.duration_ms,
            )
            return
        self.failed_attempts += 1
        if state is NotificationState.PENDING:
            asyncio.get_running_loop().call_later(retry_in, self._wake.set)
            logger.warning(
                "notification %s to channel %s attempt %d failed: %s; retry in %.1fs",
                item.notification_id,
                item.channel_id,
                item.attempt,
                result.error,
                retry_in,
            )
        else:
            logger.error(
                "notification %s to channel %s gave up after %d attempts: %s",
                item.notification_id,
                item.channel_id,
                item.attempt,
                result.error,
            )

"""Opening device streams: authenticate, register, claim presence, read the backlog, in batches.

The opens that arrive while one batch is in the database go together in the next, so a
reconnect storm (every device of an instance at once) costs one transaction of four
statements per batch instead of per device, and a lone open is one batch of one.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloud.auth.device_admission import authenticate_and_count_many
from cloud.auth.service import device_key_hash
from cloud.core.config import Settings
from cloud.core.db import DatabaseUnavailable, driver_statements
from cloud.core.errors import ApiError
from cloud.hub import close_reasons
from cloud.hub.delivery import backlog_envelopes
from cloud.hub.hub import CommandHub, LocalStream
from cloud.hub.presence import claim_presence
from cloud.limits.counters import Limit
from cloud.models import Device

logger = logging.getLogger(__name__)

SHUTDOWN_RETRY_AFTER = "5"  # seconds
MAX_BATCH = 250  # opens per transaction; bounds the arrays and the locks one batch holds
REFUSAL = "too many streams opened by this device"


@dataclass(slots=True)
class _Open:
    device_id: str
    key_hash: str
    answer: asyncio.Future[LocalStream]


class StreamOpener:
    """Opens the streams of one instance's hub; `open` is what a stream request awaits."""

    def __init__(
        self,
        hub: CommandHub,
        session_factory: async_sessionmaker[AsyncSession],
        settings: Settings,
    ) -> None:
        self._hub = hub
        self._sessions = session_factory
        self._settings = settings
        # Counted in PostgreSQL: a device hopping between instances gets one budget.
        self._limit = Limit("stream-opens", settings.stream_opens_per_device_per_minute, 60)
        self._waiting: list[_Open] = []
        self._worker: asyncio.Task[None] | None = None

    async def open(self, device_id: str, key: str | None) -> LocalStream:
        """A registered stream holding the device's backlog; no database connection stays open.

        The stream is registered before the presence claim and the backlog read, so a command
        committed meanwhile is either in the backlog or held live (then deduplicated); none
        falls in between. Refusals are those of authenticate_and_count, then 503 when the
        database or the instance is unavailable.
        """
        if not self._hub.accepting:
            raise ApiError(503, "server shutting down", {"Retry-After": SHUTDOWN_RETRY_AFTER})
        key_hash = device_key_hash(self._settings, device_id, key)
        request = _Open(device_id, key_hash, asyncio.get_running_loop().create_future())
        self._waiting.append(request)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name="stream-opener")
        # Cancelled (the client went away): the future is cancelled too, and the batch that
        # opened it abandons the stream.
        return await request.answer

    async def _run(self) -> None:
        while self._waiting:
            batch = self._next_batch()
            if batch:
                await self._open_batch(batch)

    def _next_batch(self) -> list[_Open]:
        """Up to MAX_BATCH waiting opens of distinct devices, oldest first; a second open of a
        device already in the batch waits for the next one."""
        batch: dict[str, _Open] = {}
        later: list[_Open] = []
        for request in self._waiting:
            if request.answer.done():
                continue  # cancelled while waiting
            if request.device_id in batch or len(batch) >= MAX_BATCH:
                later.append(request)
            else:
                batch[request.device_id] = request
        self._waiting = later
        return list(batch.values())

    async def _open_batch(self, batch: list[_Open]) -> None:
        streams: dict[str, LocalStream] = {}
        try:
            async with self._sessions() as session:
                async with driver_statements(await session.connection()) as driver:
                    admissions = await authenticate_and_count_many(
                        driver,
                        [(request.device_id, request.key_hash) for request in batch],
                        self._limit,
                        REFUSAL,
                    )
                answers = {
                    request.device_id: admission.answer
                    for request, admission in zip(batch, admissions, strict=True)
                }
                devices = [a for a in answers.values() if isinstance(a, Device)]
                for device in devices:
                    streams[device.device_id] = self._hub.open_stream(
                        device.device_id, device.key_hash
                    )
                if devices:
                    # Claim first, then read: a command routed to the previous holder was
                    # committed before the claim could take the presence row, so the backlog
                    # has it.
                    claimed = await claim_presence(
                        session,
                        self._hub.instance_id,
                        [(device_id, s.stream_id) for device_id, s in streams.items()],
                    )
                    backlogs = await backlog_envelopes(session, devices)
                await session.commit()
        except BaseException as exc:
            for stream in streams.values():
                self._abandon(stream)
            if _batch_failure(exc) is None:
                logger.error("stream opens failed", exc_info=exc)
            for request in batch:
                if not request.answer.done():
                    request.answer.set_exception(_batch_failure(exc) or exc)
            if not isinstance(exc, Exception):
                raise
            return
        for request in batch:
            answer = answers[request.device_id]
            if isinstance(answer, ApiError):
                if not request.answer.done():
                    request.answer.set_exception(answer)
                continue
            stream = streams[request.device_id]
            stream.claimed_at = claimed[request.device_id]
            self._hub.finish_replay(stream, backlogs[request.device_id])
            if request.answer.done():  # the client went away meanwhile
                self._abandon(stream)
            else:
                request.answer.set_result(stream)

    def _abandon(self, stream: LocalStream) -> None:
        stream.mailbox.close(close_reasons.DISCONNECTED)
        self._hub.end_stream(stream)


def _batch_failure(exc: BaseException) -> ApiError | None:
    """The answer every open of a failed batch gets, or None for a bug (re-raised as is)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, IntegrityError):  # this instance's row was reaped: it re-registers
        return ApiError(
            503, "server instance re-registering", {"Retry-After": SHUTDOWN_RETRY_AFTER}
        )
    if isinstance(exc, (DBAPIError, DatabaseUnavailable, OSError, TimeoutError)):
        return ApiError(503, "database unavailable", {"Retry-After": SHUTDOWN_RETRY_AFTER})
    return None

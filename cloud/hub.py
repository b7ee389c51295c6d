"""CommandHub: this instance's live device streams, fed by PostgreSQL LISTEN/NOTIFY (§5)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import socket
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloud.config import Settings
from cloud.db import log_worker_failure
from cloud.hub_listener import PgListener
from cloud.hub_recorder import DeliveryRecorder
from cloud.process_tuning import raise_open_file_limit, tune_garbage_collector
from cloud.services import delivery
from cloud.services.commands import COMMANDS_CHANNEL, capture_envelope, config_envelope
from cloud.sse import Command, Mailbox

logger = logging.getLogger(__name__)

SHUTDOWN_REASON = "server shutting down"
REPLACED_REASON = "replaced by a newer stream"
DISCONNECTED_REASON = "client disconnected"
TOO_SLOW_REASON = "client too slow"
DB_STEP_TIMEOUT = 10.0  # seconds; bounds each bookkeeping transaction
FINAL_STEP_TIMEOUT = 3.0  # seconds; bounds each database step of stop()
LAST_SEEN_SLICE = 500  # devices per last_seen_at UPDATE
LAST_SEEN_SLICE_PAUSE = 0.05  # seconds between slices
OPEN_WINDOW_SECONDS = 60.0  # the window of `stream_opens_per_device_per_minute`


class LocalStream:
    """One device stream held by this instance."""

    __slots__ = ("device_id", "key_hash", "stream_id", "mailbox", "claimed_at", "held")

    def __init__(self, device_id: str, key_hash: str, queue_size: int) -> None:
        self.device_id = device_id
        self.key_hash = key_hash  # a rotated key ends the stream it opened
        self.stream_id = f"str_{uuid.uuid4().hex}"
        self.mailbox = Mailbox(queue_size)
        self.claimed_at = float("inf")  # until the presence row is written
        # Live commands that arrive while the backlog is read wait here, so replay stays ordered.
        self.held: list[Command] | None = []


def is_expired(command: Command, now: datetime | None = None) -> bool:
    if command.expires_at is None:
        return False
    return datetime.fromisoformat(command.expires_at) <= (now or datetime.now(UTC))


class CommandHub:
    """Routes commands to local streams, records deliveries, keeps this instance's presence."""

    name = "hub"

    def __init__(self, app: FastAPI) -> None:
        self._app = app
        self._settings: Settings = app.state.settings
        self._sessions: async_sessionmaker[AsyncSession] = app.state.session_factory
        self.instance_id = uuid.uuid4().hex
        self._streams: dict[str, LocalStream] = {}
        self._recorder = DeliveryRecorder(self._sessions)
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._opens: dict[str, tuple[float, int]] = {}  # device_id -> (window start, opens)
        self._listener = PgListener(
            app.state.engine,
            (COMMANDS_CHANNEL, delivery.DELIVERED_CHANNEL, delivery.PRESENCE_CHANNEL),
            self._on_notification,
            self._redeliver_all,
            ping_seconds=self._settings.keepalive_seconds,
        )
        self.accepting = False
        app.state.hub = self

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Register and listen; with the database down it still starts (the loops retry)."""
        try:
            async with asyncio.timeout(FINAL_STEP_TIMEOUT), self._sessions() as session:
                await delivery.register_instance(
                    session, self.instance_id, socket.gethostname(), os.getpid()
                )
                await session.commit()
        except Exception as exc:  # noqa: BLE001 - /health must still answer 503
            logger.warning("instance not registered yet (%s); the heartbeat retries", exc)
        await self._listener.start()
        raise_open_file_limit()
        tune_garbage_collector()
        self._tasks = [
            asyncio.create_task(self._heartbeat_loop(), name="hub-heartbeat"),
            asyncio.create_task(self._close_on_shutdown(), name="hub-shutdown-watch"),
        ]
        self._recorder.start()
        self.accepting = True
        logger.info("hub started as instance %s", self.instance_id)

    async def stop(self) -> None:
        """Idempotent: close every stream, drain bookkeeping, leave the instance table."""
        if self._stopping.is_set():
            return
        self.accepting = False
        self.close_all(SHUTDOWN_REASON)
        self._stopping.set()
        await self._listener.stop()
        for task in list(self._tasks):
            with contextlib.suppress(Exception, asyncio.CancelledError):  # already logged
                await task
        await self._recorder.stop()
        try:
            async with asyncio.timeout(FINAL_STEP_TIMEOUT), self._sessions() as session:
                await delivery.unregister_instance(session, self.instance_id)
                await session.commit()
        except Exception:  # noqa: BLE001 - the reaper removes a row we could not
            logger.warning("could not remove instance %s; the reaper will", self.instance_id)

    # -- streams -----------------------------------------------------------------------------
    def allow_open(self, device_id: str) -> float | None:
        """None when the device may open a stream now, else the seconds until it may."""
        now = asyncio.get_running_loop().time()
        start, opens = self._opens.get(device_id, (now, 0))
        if now - start >= OPEN_WINDOW_SECONDS:
            start, opens = now, 0
        if opens >= self._settings.stream_opens_per_device_per_minute:
            return start + OPEN_WINDOW_SECONDS - now
        self._opens[device_id] = (start, opens + 1)
        return None

    def open_stream(self, device_id: str, key_hash: str) -> LocalStream:
        """Register a new stream for the device; an older local stream is closed."""
        stream = LocalStream(device_id, key_hash, self._settings.stream_queue_size)
        previous = self._streams.get(device_id)
        if previous is not None:
            previous.mailbox.close(REPLACED_REASON)
        self._streams[device_id] = stream
        if not self.accepting:  # shutdown began while this stream was authenticating
            stream.mailbox.close(SHUTDOWN_REASON)
        return stream

    def finish_replay(self, stream: LocalStream, backlog: Iterable[dict[str, Any]]) -> None:
        """Queue the backlog, then the live commands that arrived meanwhile, deduplicated."""
        held, stream.held = stream.held or [], None
        for command in [*(Command.from_envelope(e) for e in backlog), *held]:
            self._offer(stream, command)

    def end_stream(self, stream: LocalStream) -> None:
        if self._streams.get(stream.device_id) is stream:
            del self._streams[stream.device_id]
        if stream.claimed_at != float("inf"):
            self._recorder.released(stream.device_id, stream.stream_id)

    def written(self, stream: LocalStream, command: Command) -> None:
        """The command's bytes went to the client: record `sent` (batched)."""
        if command.type == "capture":
            self._recorder.written(command.command_id, command.manual)

    def close_all(self, reason: str) -> None:
        for stream in list(self._streams.values()):
            stream.mailbox.close(reason)

    def connected_here(self) -> list[str]:
        return list(self._streams)

    # -- delivery confirmation for the trigger API ---------------------------------------------
    def expect_delivery(self, trigger_id: str) -> asyncio.Future[None]:
        return self._recorder.expect(trigger_id)

    def forget_delivery(self, trigger_id: str) -> None:
        self._recorder.forget(trigger_id)

    # -- notifications -------------------------------------------------------------------------
    def _on_notification(self, channel: str, payload: str) -> None:
        if channel == COMMANDS_CHANNEL:
            message = json.loads(payload)
            stream = self._streams.get(message["device_id"])
            if stream is None:
                return
            if message.get("envelope") is None:
                self._spawn(self._redeliver([stream]))
            else:
                self._route(stream, Command.from_envelope(message["envelope"]))
        elif channel == delivery.DELIVERED_CHANNEL:
            for trigger_id in payload.split(","):
                self._recorder.resolve(trigger_id)
        elif channel == delivery.PRESENCE_CHANNEL:
            message = json.loads(payload)
            stream = self._streams.get(message["device_id"])
            if (
                stream is not None
                and message["instance_id"] != self.instance_id
                and message["claimed_at"] > stream.claimed_at
            ):
                stream.mailbox.close(REPLACED_REASON)

    def _route(self, stream: LocalStream, command: Command) -> None:
        if stream.held is not None:
            stream.held.append(command)
        else:
            self._offer(stream, command)

    def _offer(self, stream: LocalStream, command: Command) -> None:
        if is_expired(command):
            return
        if not stream.mailbox.offer(command):
            logger.warning("dropping slow stream of %s: queue full", stream.device_id)
            stream.mailbox.close(TOO_SLOW_REASON)

    async def _redeliver_all(self) -> None:
        """After the listener reconnects: notifications may have been missed; replay open ones."""
        await self._redeliver(list(self._streams.values()))

    async def _redeliver(self, streams: list[LocalStream]) -> None:
        if not streams:
            return
        by_device = {stream.device_id: stream for stream in streams}
        async with asyncio.timeout(DB_STEP_TIMEOUT), self._sessions() as session:
            owed = await delivery.devices_owed_config(session, list(by_device))
            triggers = await delivery.open_triggers_for(session, list(by_device))
        for device in owed:
            self._route(by_device[device.device_id], Command.from_envelope(config_envelope(device)))
        for trigger in triggers:
            self._route(
                by_device[trigger.device_id], Command.from_envelope(capture_envelope(trigger))
            )

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.append(task)
        task.add_done_callback(self._side_task_done)

    def _side_task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.remove(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("hub side task failed", exc_info=task.exception())

    # -- background loops ------------------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        # A fixed cadence, not "keepalive after the last beat ended": the presence window is
        # two keepalives, and a slow beat must not push the next one past it.
        loop = asyncio.get_running_loop()
        next_beat = loop.time()
        while not self._stopping.is_set():
            next_beat += self._settings.keepalive_seconds
            await self._pause(max(0.0, next_beat - loop.time()))
            next_beat = max(next_beat, loop.time() - self._settings.keepalive_seconds)
            if self._stopping.is_set():
                return
            try:
                await self._heartbeat_once()
            except Exception:  # noqa: BLE001 - the next beat tries again
                log_worker_failure(logger, "heartbeat of instance %s failed", self.instance_id)

    async def _heartbeat_once(self) -> None:
        now = asyncio.get_running_loop().time()
        for device_id, (start, _) in list(self._opens.items()):
            if now - start >= OPEN_WINDOW_SECONDS:
                del self._opens[device_id]
        async with asyncio.timeout(DB_STEP_TIMEOUT), self._sessions() as session:
            alive = await delivery.heartbeat(session, self.instance_id)
            if not alive:
                logger.warning("instance %s was reaped; registering again", self.instance_id)
                await delivery.register_instance(
                    session, self.instance_id, socket.gethostname(), os.getpid()
                )
                await delivery.restore_presence(
                    session,
                    self.instance_id,
                    [(s.device_id, s.stream_id) for s in self._streams.values()],
                )
            await session.commit()
        # last_seen_at in slices: one 10,000-row UPDATE stalled pushes for ~200 ms (bench_push).
        # The pauses stay within half a keepalive, so the next instance heartbeat is on time.
        streams = [(s.device_id, s.key_hash) for s in self._streams.values()]
        slices = math.ceil(len(streams) / LAST_SEEN_SLICE)
        pause = min(LAST_SEEN_SLICE_PAUSE, self._settings.keepalive_seconds / 2 / max(slices, 1))
        for start in range(0, len(streams), LAST_SEEN_SLICE):
            async with asyncio.timeout(DB_STEP_TIMEOUT), self._sessions() as session:
                barred = await delivery.touch_devices(
                    session, streams[start : start + LAST_SEEN_SLICE]
                )
                await session.commit()
            for device_id, reason in barred.items():
                stream = self._streams.get(device_id)
                if stream is not None:
                    stream.mailbox.close(reason)
            await self._pause(pause)

    async def _close_on_shutdown(self) -> None:
        shutdown: asyncio.Event = self._app.state.shutdown_event
        stop_wait = asyncio.ensure_future(self._stopping.wait())
        shutdown_wait = asyncio.ensure_future(shutdown.wait())
        try:
            await asyncio.wait({stop_wait, shutdown_wait}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_wait.cancel()
            shutdown_wait.cancel()
        self.accepting = False
        self.close_all(SHUTDOWN_REASON)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

"""CommandHub: this instance's live device streams, fed by PostgreSQL LISTEN/NOTIFY.

How a command reaches a stream, and why `sent` is recorded only after the bytes were written,
is told in docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import socket
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cloud.core.config import Settings
from cloud.core.db import log_worker_failure
from cloud.core.process_tuning import raise_open_file_limit, tune_garbage_collector
from cloud.core.worker import Worker
from cloud.hub import close_reasons, connection_log, delivery, presence
from cloud.hub.connection_log import ConnectionEvent
from cloud.hub.envelopes import (
    COMMANDS_CHANNEL,
    DELIVERED_CHANNEL,
    CommandType,
    capture_envelope,
    command_channel,
    config_envelope,
    delivered_channel,
    device_command_envelope,
    parse_command_message,
)
from cloud.hub.listener import PgListener
from cloud.hub.mailbox import Command, Mailbox
from cloud.hub.recorder import DeliveryRecorder
from cloud.metrics import gc_pauses
from cloud.metrics import registry as metrics
from cloud.models import ConnectionEventKind

logger = logging.getLogger(__name__)

DB_STEP_TIMEOUT = 10.0  # seconds; bounds each bookkeeping transaction
FINAL_STEP_TIMEOUT = 3.0  # seconds; bounds each database step of stop()
LAST_SEEN_SLICE = 500  # devices per last_seen_at UPDATE


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


class CommandHub(Worker):
    """Routes commands to local streams, records deliveries, keeps this instance's presence.

    Its own loop is the instance heartbeat; the listener and the delivery recorder are
    workers it starts and stops with it.
    """

    name = "hub-heartbeat"
    stop_grace = FINAL_STEP_TIMEOUT

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        session_factory: async_sessionmaker[AsyncSession],
        shutdown_event: asyncio.Event,
        extra_channels: Mapping[str, Callable[[str], None]] | None = None,
        on_listener_reconnect: Callable[[], None] | None = None,
        on_extra_heard: Callable[[], None] | None = None,
    ) -> None:
        """`extra_channels`: more channels for this instance's one LISTEN connection, each with
        its handler (the console's events), heard only while wanted (`want_extra`);
        `on_listener_reconnect` runs after a reconnect, `on_extra_heard` when an extra channel
        starts being heard (what it carried before was missed)."""
        super().__init__()
        self._settings = settings
        self._sessions = session_factory
        self._shutdown_event = shutdown_event  # set by the server on SIGTERM/Ctrl-C
        self.instance_id = uuid.uuid4().hex
        self._streams: dict[str, LocalStream] = {}
        self._recorder = DeliveryRecorder(session_factory, engine)
        # Commands for devices streaming here come on this instance's own channel; the shared
        # one carries those whose holder was unknown when they were stored.
        self.command_channel = command_channel(self.instance_id)
        # Deliveries of commands this instance's API calls wait for come on its own channel.
        self.delivered_channel = delivered_channel(self.instance_id)
        self._extra_channels = dict(extra_channels or {})
        self._on_listener_reconnect = on_listener_reconnect
        self._listener = PgListener(
            engine,
            (
                self.command_channel,
                COMMANDS_CHANNEL,
                DELIVERED_CHANNEL,
                self.delivered_channel,
                presence.PRESENCE_CHANNEL,
                connection_log.BARRED_CHANNEL,
            ),
            self._on_notification,
            self._redeliver_all,
            ping_seconds=settings.keepalive_seconds,
            on_demand=tuple(self._extra_channels),
            on_demand_started=on_extra_heard,
        )
        self._stopped = False
        self.accepting = False

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Register and listen; with the database down it still starts (the loops retry)."""
        try:
            async with asyncio.timeout(FINAL_STEP_TIMEOUT), self._sessions() as session:
                await presence.register_instance(
                    session, self.instance_id, socket.gethostname(), os.getpid()
                )
                await session.commit()
        except Exception as exc:  # noqa: BLE001 - /health must still answer 503
            logger.warning("instance not registered yet (%s); the heartbeat retries", exc)
        await self._listener.start()
        raise_open_file_limit()
        tune_garbage_collector()
        gc_pauses.install()
        await super().start()
        self.spawn(self._close_on_shutdown(), "shutdown-watch")
        await self._recorder.start()
        self.accepting = True
        logger.info("hub started as instance %s", self.instance_id)

    async def stop(self) -> None:
        """Idempotent: close every stream, drain bookkeeping, leave the instance table."""
        if self._stopped:
            return
        self._stopped = True
        self.accepting = False
        self.close_all(close_reasons.SHUTDOWN)
        await self._listener.stop()
        await super().stop()
        await self._recorder.stop()
        try:
            async with asyncio.timeout(FINAL_STEP_TIMEOUT), self._sessions() as session:
                await presence.unregister_instance(session, self.instance_id)
                await session.commit()
        except Exception:  # noqa: BLE001 - the reaper removes a row we could not
            logger.warning("could not remove instance %s; the reaper will", self.instance_id)

    # -- streams -----------------------------------------------------------------------------
    def open_stream(self, device_id: str, key_hash: str) -> LocalStream:
        """Register a new stream for the device; an older local stream is closed."""
        stream = LocalStream(device_id, key_hash, self._settings.stream_queue_size)
        previous = self._streams.get(device_id)
        if previous is not None:
            previous.mailbox.close(close_reasons.REPLACED)
        self._streams[device_id] = stream
        if not self.accepting:  # shutdown began while this stream was authenticating
            stream.mailbox.close(close_reasons.SHUTDOWN)
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
        metrics.COMMANDS.labels(command.type, "written").inc()
        if command.type != CommandType.CONFIG:  # config is acknowledged, not marked sent
            self._recorder.written(command.command_id, command.manual, command.reply_to)
            if command.manual and command.envelope.get("issued_at"):
                issued = datetime.fromisoformat(command.envelope["issued_at"])
                metrics.observe_push((datetime.now(UTC) - issued).total_seconds())

    def record_connection(
        self, stream: LocalStream, event: ConnectionEventKind, close_reason: str | None = None
    ) -> None:
        """A live stream opened or ended: its connection history row (batched) and metrics."""
        reason = None
        if event == ConnectionEventKind.DISCONNECTED:
            reason = connection_log.reason_code(close_reason)
            metrics.STREAMS_CLOSED.labels(reason).inc()
        else:
            metrics.STREAMS_OPENED.inc()
        self._recorder.connection_event(
            ConnectionEvent(
                stream.device_id,
                event,
                reason,
                self.instance_id,
                stream.stream_id,
                datetime.now(UTC),
            )
        )

    @property
    def listener_connected(self) -> bool:
        return self._listener.connected

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

    def want_extra(self, channel: str, wanted: bool) -> None:
        """Hear an extra channel (someone here reads it now) or, after a while, stop."""
        self._listener.want(channel, wanted)

    async def until_heard(self, channel: str, wait_seconds: float) -> bool:
        """Wait (bounded) until an extra channel is heard; False if it is not (yet)."""
        return await self._listener.until_heard(channel, wait_seconds)

    def hand_over(self, device_id: str, envelope: dict[str, Any]) -> bool:
        """Local fast path: a command committed by this instance for a stream held here.

        Queued at once instead of after a NOTIFY round trip through PostgreSQL; the caller
        stored it first, and the mailbox deduplicates by command id should it also arrive by
        NOTIFY or in a backlog. False when no stream of the device is held here (it then gets
        the command from its backlog when it connects).
        """
        stream = self._streams.get(device_id)
        if stream is None:
            return False
        self._route(stream, Command.from_envelope(envelope))
        return True

    # -- notifications -------------------------------------------------------------------------
    def _on_notification(self, channel: str, payload: str) -> None:
        if channel == self.command_channel or channel == COMMANDS_CHANNEL:
            device_id, envelope, reply_to = parse_command_message(payload)
            stream = self._streams.get(device_id)
            if stream is None:
                return
            if envelope is None:
                self.spawn(self._redeliver([stream]), "redeliver")
            else:
                self._route(stream, Command.from_envelope(envelope, reply_to))
        elif channel == self.delivered_channel or channel == DELIVERED_CHANNEL:
            for trigger_id in payload.split(","):
                self._recorder.resolve(trigger_id)
        elif channel == presence.PRESENCE_CHANNEL:
            message = json.loads(payload)
            stream = self._streams.get(message["device_id"])
            if (
                stream is not None
                and message["instance_id"] != self.instance_id
                and message["claimed_at"] > stream.claimed_at
            ):
                stream.mailbox.close(close_reasons.REPLACED)
        elif channel == connection_log.BARRED_CHANNEL:
            device_id, reason = connection_log.parse_barred_message(payload)
            stream = self._streams.get(device_id)
            if stream is not None:
                stream.mailbox.close(reason)
        elif (handler := self._extra_channels.get(channel)) is not None:
            handler(payload)

    def _route(self, stream: LocalStream, command: Command) -> None:
        if stream.held is not None:
            stream.held.append(command)
        else:
            self._offer(stream, command)

    def _offer(self, stream: LocalStream, command: Command) -> None:
        if is_expired(command):
            metrics.COMMANDS.labels(command.type, "expired").inc()
            return
        if not stream.mailbox.offer(command):
            metrics.COMMANDS.labels(command.type, "queue_full").inc()
            logger.warning(
                "dropping slow stream of %s: queue full",
                stream.device_id,
                extra={"device_id": stream.device_id},
            )
            stream.mailbox.close(close_reasons.TOO_SLOW)

    async def _redeliver_all(self) -> None:
        """After the listener reconnects: notifications may have been missed; replay open ones."""
        if self._on_listener_reconnect is not None:
            self._on_listener_reconnect()
        await self._redeliver(list(self._streams.values()))

    async def _redeliver(self, streams: list[LocalStream]) -> None:
        if not streams:
            return
        by_device = {stream.device_id: stream for stream in streams}
        async with asyncio.timeout(DB_STEP_TIMEOUT), self._sessions() as session:
            owed = await delivery.devices_owed_config(session, list(by_device))
            triggers = await delivery.open_triggers_for(session, list(by_device))
            commands = await delivery.open_commands_for(session, list(by_device))
        for device in owed:
            self._route(by_device[device.device_id], Command.from_envelope(config_envelope(device)))
        for trigger in triggers:
            self._route(
                by_device[trigger.device_id], Command.from_envelope(capture_envelope(trigger))
            )
        for command in commands:
            self._route(
                by_device[command.device_id],
                Command.from_envelope(device_command_envelope(command)),
            )

    # -- background loops ------------------------------------------------------------------------
    async def run(self) -> None:
        # A fixed cadence, not "keepalive after the last beat ended": the presence window is
        # two keepalives, and a slow beat must not push the next one past it.
        loop = asyncio.get_running_loop()
        next_beat = loop.time()
        while not self.stopping:
            next_beat += self._settings.keepalive_seconds
            if await self.wait(next_beat - loop.time()):
                return
            next_beat = max(next_beat, loop.time() - self._settings.keepalive_seconds)
            try:
                await self._heartbeat_once()
            except Exception:  # noqa: BLE001 - the next beat tries again
                log_worker_failure(logger, "heartbeat of instance %s failed", self.instance_id)

    async def _heartbeat_once(self) -> None:
        async with asyncio.timeout(DB_STEP_TIMEOUT), self._sessions() as session:
            alive = await presence.heartbeat(session, self.instance_id)
            if not alive:
                logger.warning("instance %s was reaped; registering again", self.instance_id)
                await presence.register_instance(
                    session, self.instance_id, socket.gethostname(), os.getpid()
                )
                await presence.restore_presence(
                    session,
                    self.instance_id,
                    [(s.device_id, s.stream_id) for s in self._streams.values()],
                )
            await session.commit()
        # last_seen_at in slices spread over half a keepalive (the next instance heartbeat stays
        # on time): one 10,000-row UPDATE stalled pushes for ~200 ms, and 500-row slices 50 ms
        # apart, each 10-15 ms of PostgreSQL CPU, still pushed the p99 of triggers fired
        # meanwhile past 100 ms (bench_push at 1,000 triggers/s).
        streams = [(s.device_id, s.key_hash) for s in self._streams.values()]
        slices = math.ceil(len(streams) / LAST_SEEN_SLICE)
        pause = self._settings.keepalive_seconds / 2 / max(slices, 1)
        for start in range(0, len(streams), LAST_SEEN_SLICE):
            if start and await self.wait(pause):
                return
            async with asyncio.timeout(DB_STEP_TIMEOUT), self._sessions() as session:
                barred = await presence.touch_devices(
                    session, streams[start : start + LAST_SEEN_SLICE]
                )
                await session.commit()
            for device_id, reason in barred.items():
                stream = self._streams.get(device_id)
                if stream is not None:
                    stream.mailbox.close(reason)

    async def _close_on_shutdown(self) -> None:
        await self.wait_stop_or(self._shutdown_event)
        self.accepting = False
        self.close_all(close_reasons.SHUTDOWN)

"""The device agent: stream commands in, captures out, config applied live."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device.blocking import run_blocking
from device.camera import CameraSettings
from device.capture import CapturePipeline
from device.detection import DetectorSettings, create_detector
from device.device_commands import DeviceCommandHandler, build_diagnostics
from device.health import collect_health
from device.longpoll import LongPoller
from device.outbox import CaptureOrigin, Outbox
from device.remote_config import camera_settings_for, detector_settings_for, reported_config
from device.spool import Spool
from device.state import AgentState
from device.stream import DEVICE_COMMAND_TYPES, Command, CommandStream, StreamRejected
from device.transport import SSE_RETRY_SECONDS, CommandTransport
from device.uploader import CloudClient
from device.watch import WatchOptions, watch_loop

logger = logging.getLogger(__name__)

STOP_GRACE = 5.0  # seconds a capture in flight may take to finish after SIGTERM
EXIT_OK = 0
EXIT_CRASHED = 1  # a bug; systemd restarts the agent
EXIT_REJECTED = 3  # the cloud refused this device (wrong key, unknown or suspended device)


@dataclass(frozen=True)
class AgentOptions:
    api_url: str
    device_id: str
    api_key: str
    stream_timeout: float = 70.0
    reconnect_delay: float = 5.0
    watch_labels: frozenset[str] = frozenset()
    watch_interval: float = 30.0
    health_interval: float = 60.0  # seconds between health reports (one more on each connect)
    state_dir: Path | None = None  # whose disk free the health report gives
    # Long-poll fallback (docs/device-agent.md); None: the stream only, reconnecting forever.
    first_byte_timeout: float | None = None
    stream_failures_before_poll: int | None = None
    sse_retry_seconds: float = SSE_RETRY_SECONDS


class Agent:
    """Runs the stream, the command worker, the outbox's spool drain and the watch loop.

    Captures (commanded or watched) are handed to one ``Outbox``; the agent itself only
    executes commands, applies config and reports failed triggers.
    """

    def __init__(
        self,
        options: AgentOptions,
        pipeline: CapturePipeline,
        camera_baseline: CameraSettings,
        detector_baseline: DetectorSettings,
        detector_settings: DetectorSettings,
        state: AgentState,
        spool: Spool,
        client: CloudClient,
    ) -> None:
        self.options = options
        self.pipeline = pipeline
        self.state = state
        self.client = client
        self.outbox = Outbox(
            options.device_id, spool, client, state, lambda: self.pipeline.detector.name
        )
        self._camera_baseline = camera_baseline
        self._detector_baseline = detector_baseline
        self._detector_settings = detector_settings
        self._queue: asyncio.Queue[Command] = asyncio.Queue()
        self._stop = asyncio.Event()
        self.stream = CommandStream(
            options.api_url,
            options.device_id,
            options.api_key,
            self._queue.put,
            read_timeout=options.stream_timeout,
            reconnect_delay=options.reconnect_delay,
            on_connect=self._on_connect,
            first_byte_timeout=options.first_byte_timeout,
            failures_before_blocked=options.stream_failures_before_poll,
        )
        poller = LongPoller(
            options.api_url,
            options.device_id,
            options.api_key,
            self._queue.put,
            retry_delay=options.reconnect_delay,
            on_connect=self._on_connect,
        )
        self.transport = CommandTransport(self.stream, poller, options.sse_retry_seconds)
        self._started = time.monotonic()
        self._health_now = asyncio.Event()
        self.exit_code: int | None = None  # set by a restart command
        self.device_commands = DeviceCommandHandler(
            client, state, self._diagnostics, self._request_exit
        )

    def _on_connect(self) -> None:
        self.outbox.wake(reset_backoff=True)
        self._health_now.set()  # the cloud hears how we are as soon as we are back

    def _request_exit(self, code: int) -> None:
        self.exit_code = code
        self.stop()

    @property
    def spool(self) -> Spool:
        """The spool of captures waiting for upload (owned by the outbox)."""
        return self.outbox.spool

    def stop(self) -> None:
        """Ask the agent to finish the capture in flight and exit (idempotent)."""
        self._stop.set()

    async def run(self) -> int:
        """Run until ``stop()`` or until the cloud refuses the device; return the exit code."""
        stream = asyncio.create_task(self.transport.run(), name="stream")
        worker = asyncio.create_task(self._work(), name="command-worker")
        sender = asyncio.create_task(self.outbox.run(), name="spool-sender")
        side = [stream, sender, asyncio.create_task(self._report_health(), name="health")]
        if self.options.watch_labels:
            side.append(asyncio.create_task(self._watch(), name="watch"))
        stopper = asyncio.create_task(self._stop.wait(), name="stop")
        code = EXIT_OK
        try:
            await asyncio.wait([stopper, stream], return_when=asyncio.FIRST_COMPLETED)
            if stream.done() and not stream.cancelled():
                exc = stream.exception()
                if isinstance(exc, StreamRejected):
                    logger.error(
                        "the cloud refused device %s (%s): check --api-key and --device-id",
                        self.options.device_id,
                        exc,
                    )
                    code = EXIT_REJECTED
                elif exc is not None:
                    logger.error("command stream crashed", exc_info=exc)
                    code = EXIT_CRASHED
        finally:
            self._stop.set()
            stream.cancel()
            self._queue.put_nowait(Command("", "stop"))  # wakes an idle worker
            done, _ = await asyncio.wait([worker], timeout=STOP_GRACE)
            if not done:
                logger.warning("capture still running after %.0fs; it stays spooled", STOP_GRACE)
            self.outbox.stop()
            for task in (worker, stopper, *side):
                task.cancel()
            await asyncio.gather(worker, stopper, *side, return_exceptions=True)
            await self.client.aclose()
            await run_blocking(self.pipeline.camera.close)
        return self.exit_code if self.exit_code is not None else code

    async def _work(self) -> None:
        """Execute commands one at a time, in arrival order."""
        while not self._stop.is_set():
            command = await self._queue.get()
            if self._stop.is_set():
                return  # left for redelivery after restart
            try:
                if command.type == "capture":
                    await self.handle_capture(command)
                elif command.type == "config":
                    await self.handle_config(command)
                elif command.type in DEVICE_COMMAND_TYPES:
                    await self.device_commands.handle(command)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("command %s failed", command.command_id)

    async def handle_capture(self, command: Command) -> None:
        """Capture once per command id; report a trigger failed when no frame can be had."""
        if self.state.was_executed(command.command_id):
            logger.info("command %s already executed; ignoring duplicate", command.command_id)
            return
        trigger_id = str(command.payload.get("trigger_id") or command.command_id)
        if await run_blocking(self.spool.holds, trigger_id):
            # Killed after spooling but before recording the command: the spool delivers it.
            logger.info("trigger %s already spooled; ignoring duplicate", trigger_id)
            await run_blocking(self.state.mark_executed, command.command_id)
            return
        label = command.payload.get("trigger_label")
        try:
            result = await run_blocking(self.pipeline.capture, trigger_id)
        except Exception as exc:
            reason = f"capture failed: {exc}"
            logger.error("trigger %s: %s", trigger_id, reason)
            if await self.client.report_failed(trigger_id, reason):
                await run_blocking(self.state.mark_executed, command.command_id)
            return
        trigger_type = str(command.payload.get("trigger_type") or "scheduled")
        origin = CaptureOrigin(trigger_id, label, trigger_type, command.command_id)
        await self.outbox.send(result, origin)

    def health(self) -> dict[str, Any]:
        """The health report now (blocking: reads the spool, the disk and /sys)."""
        return collect_health(
            self._started,
            self.pipeline,
            self.spool,
            self.options.state_dir or Path.cwd(),
            self._detector_settings.model,
            self.transport_name(),
        )

    def transport_name(self) -> str:
        return self.transport.mode

    async def _report_health(self) -> None:
        """On each connect and every ``health_interval`` seconds: post a health report."""
        while not self._stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._health_now.wait(), self.options.health_interval)
            self._health_now.clear()
            try:
                report = await run_blocking(self.health)
                await self.client.post_health(report)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("health report failed")

    async def _diagnostics(self) -> dict[str, Any]:
        health = await run_blocking(self.health)
        options = {
            "api_url": self.options.api_url,
            "device_id": self.options.device_id,
            "stream_timeout": self.options.stream_timeout,
            "health_interval": self.options.health_interval,
            "watch_labels": sorted(self.options.watch_labels),
        }
        config = {
            "options": options,
            "applied_config_version": self.state.config_version,
            "applied_config": self.state.config,
            "camera": {"source": self.pipeline.camera.source},
            "detector": dataclasses.asdict(self._detector_settings),
        }
        return await build_diagnostics(config, self.spool, health)

    async def _watch(self) -> None:
        """``--watch``: event captures go through the same outbox as commanded ones."""
        options = WatchOptions(self.options.watch_labels, self.options.watch_interval)
        await watch_loop(self.outbox, lambda: self.pipeline, options)

    async def handle_config(self, command: Command) -> None:
        """Apply a newer config version live, persist it, acknowledge it."""
        version, config = command.payload.get("version"), command.payload.get("config")
        if not isinstance(version, int) or not isinstance(config, dict):
            logger.warning("ignoring malformed config command %s", command.command_id)
            return
        # Equal: a redelivery because our ack was lost; only acknowledge again. Lower: the
        # cloud's record was reset; the cloud is the source of truth, so apply it too.
        if version != self.state.config_version:
            await self.apply_config(config)
            await run_blocking(self.state.set_config, version, config)
        else:
            config = self.state.config
        report = reported_config(config, self.pipeline.camera.settings, self._detector_settings)
        acked = await self.client.ack_config(version, report)
        logger.info(
            "config version %d applied: camera=%s detection=%s ack=%s",
            version,
            report["camera"],
            report["detection"],
            "ok" if acked else "failed (resent on reconnect)",
        )

    async def apply_config(self, config: dict[str, Any]) -> None:
        """Reconfigure camera and detector; a detector that cannot start keeps the old one."""
        camera_settings = camera_settings_for(self._camera_baseline, config)
        await run_blocking(self.pipeline.camera.reconfigure, camera_settings)
        settings = detector_settings_for(self._detector_baseline, config)
        if settings == self._detector_settings:
            return
        try:
            detector = await run_blocking(create_detector, settings)
        except Exception as exc:
            logger.error("config detector settings not applied, keeping current ones: %s", exc)
            return
        await run_blocking(self.pipeline.swap_detector, detector)
        self._detector_settings = settings

"""The capture outbox: every capture goes to the spool first, then to the cloud.

A capture is written to the spool (durably) before anything is sent, so a crash or an outage
never loses it. It is then uploaded right away unless older captures are still waiting, in
which case it queues behind them and the background drain sends everything oldest first.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from device import __version__
from device.blocking import run_blocking
from device.capture import CaptureResult
from device.spool import Spool
from device.state import AgentState
from device.uploader import CloudClient, SpoolSender, UploadOutcome

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaptureOrigin:
    """Why a capture was taken: a trigger's command, or a watch event (no trigger id)."""

    trigger_id: str | None
    label: str | None
    trigger_type: str
    command_id: str | None = None


class Outbox:
    """Stores captures in the spool, uploads them, and drains the spool in the background."""

    def __init__(
        self,
        device_id: str,
        spool: Spool,
        client: CloudClient,
        state: AgentState,
        detector_name: Callable[[], str],
    ) -> None:
        self.device_id = device_id
        self.spool = spool
        self.state = state
        self._detector_name = detector_name
        self._sender = SpoolSender(spool, client)

    async def run(self) -> None:
        """Drain the spool (oldest first, backing off while the cloud is away) until ``stop()``."""
        await self._sender.run()

    def wake(self, reset_backoff: bool = False) -> None:
        """Retry the spool now; ``reset_backoff`` after the cloud is known to be reachable."""
        self._sender.wake(reset_backoff=reset_backoff)

    def stop(self) -> None:
        self._sender.stop()

    async def send(self, result: CaptureResult, origin: CaptureOrigin) -> None:
        """Spool the capture (durable first), try it right away, log one line.

        A capture's command counts as executed once the capture is spooled: from then on the
        spool delivers it, so a redelivered command must not capture again.
        """
        metadata = self.upload_metadata(result, origin)
        # Made once and kept in the spool entry: every retry sends the same id, so a retry
        # after a lost response finds the first record instead of making a second one.
        metadata["capture_id"] = uuid.uuid4().hex
        entry = self.spool.new_entry(origin.trigger_id or "event")
        self._sender.claim(entry)  # the background drain must not send it a second time
        try:
            await run_blocking(self.spool.write, entry, result.jpeg, metadata)
            if origin.command_id:
                await run_blocking(self.state.mark_executed, origin.command_id)
            backlog = self._sender.backlogged or len(await run_blocking(self.spool.entries)) > 1
            start = time.perf_counter()
            if backlog:
                outcome = "spooled behind older captures"
                self._sender.release(entry)
                self._sender.wake()
            else:
                upload = await self._sender.deliver(entry, claimed=True)
                outcome = upload.record_id or upload.outcome.value
                if upload.outcome is UploadOutcome.RETRY:
                    outcome = f"spooled ({upload.detail})"
                    self._sender.wake()
                elif upload.outcome is UploadOutcome.REJECTED:
                    outcome = f"rejected ({upload.status_code} {upload.detail})"
        finally:
            self._sender.release(entry)
        timings = dict(result.timings_ms, upload=round((time.perf_counter() - start) * 1000, 1))
        logger.info(
            "capture trigger=%s label=%s %dx%d detections=%d grab=%.0fms detect=%.0fms "
            "encode=%.0fms upload=%.0fms -> %s",
            origin.trigger_id or "event",
            origin.label,
            result.width,
            result.height,
            len(result.detections),
            timings.get("grab", 0.0),
            timings.get("detect", 0.0),
            timings.get("encode", 0.0),
            timings["upload"],
            outcome,
        )

    def upload_metadata(self, result: CaptureResult, origin: CaptureOrigin) -> dict[str, Any]:
        """The metadata JSON sent with the image (and stored beside it in the spool)."""
        return {
            "device_id": self.device_id,
            "trigger_id": origin.trigger_id,
            "captured_at": result.captured_at.isoformat(),
            "trigger_label": origin.label,
            "detections": result.detections,
            "metadata": {
                "device_version": __version__,
                "trigger_type": origin.trigger_type,
                "command_id": origin.command_id,
                "width": result.width,
                "height": result.height,
                "detector": self._detector_name(),
                "config_version": self.state.config_version,
                "timings_ms": result.timings_ms,
            },
        }

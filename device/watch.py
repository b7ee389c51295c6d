"""``--watch``: evaluate frames continuously and upload an event capture on watched labels."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from device.blocking import run_blocking
from device.capture import CapturePipeline
from device.outbox import CaptureOrigin, Outbox

logger = logging.getLogger(__name__)

WATCH_FRAME_PERIOD = 0.5  # seconds between evaluated frames (~2 fps keeps a Jetson cool)
WATCH_ERROR_PAUSE = 5.0  # seconds after a failed grab before trying again


@dataclass(frozen=True)
class WatchOptions:
    labels: frozenset[str]
    interval: float  # seconds: at most one event capture per interval


async def watch_loop(
    outbox: Outbox, pipeline: Callable[[], CapturePipeline], options: WatchOptions
) -> None:
    """Upload an event capture (trigger_id null) when a watched label appears, rate limited.

    ``pipeline`` is asked for the current capture pipeline before every frame.
    """
    labels, interval = options.labels, options.interval
    last_event = float("-inf")
    idle_logged = False
    logger.info(
        "watching for %s (at most one event every %.0fs)", ",".join(sorted(labels)), interval
    )
    while True:
        current = pipeline()
        if not current.detecting:
            if not idle_logged:
                logger.warning("--watch needs a detector; detection is off, watch paused")
                idle_logged = True
            await asyncio.sleep(WATCH_ERROR_PAUSE)
            continue
        idle_logged = False
        try:
            # No warmup: frames are read continuously, so the buffer never goes stale.
            frame, detections, timings = await run_blocking(current.grab_and_detect, 0)
        except Exception as exc:
            logger.warning("watch: no frame (%s)", exc)
            await asyncio.sleep(WATCH_ERROR_PAUSE)
            continue
        matched = sorted({d.label for d in detections if d.label in labels})
        now = time.monotonic()
        if matched and now - last_event >= interval:
            last_event = now
            captured_at = datetime.now(timezone.utc)
            result = await run_blocking(
                current.finish, frame, detections, timings, captured_at, "event"
            )
            origin = CaptureOrigin(None, f"watch:{','.join(matched)}", "event")
            await outbox.send(result, origin)
        await asyncio.sleep(WATCH_FRAME_PERIOD)

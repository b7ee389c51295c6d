"""``--watch``: evaluate frames continuously and upload an event capture on watched labels."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from device.blocking import run_blocking

if TYPE_CHECKING:
    from device.agent import Agent

logger = logging.getLogger(__name__)

WATCH_FRAME_PERIOD = 0.5  # seconds between evaluated frames (~2 fps keeps a Jetson cool)
WATCH_ERROR_PAUSE = 5.0  # seconds after a failed grab before trying again


async def watch_loop(agent: Agent) -> None:
    """Upload an event capture (trigger_id null) when a watched label appears, rate limited."""
    labels = agent.options.watch_labels
    interval = agent.options.watch_interval
    last_event = float("-inf")
    idle_logged = False
    logger.info(
        "watching for %s (at most one event every %.0fs)", ",".join(sorted(labels)), interval
    )
    while True:
        pipeline = agent.pipeline
        if not pipeline.detecting:
            if not idle_logged:
                logger.warning("--watch needs a detector; detection is off, watch paused")
                idle_logged = True
            await asyncio.sleep(WATCH_ERROR_PAUSE)
            continue
        idle_logged = False
        try:
            # No warmup: frames are read continuously, so the buffer never goes stale.
            frame, detections, timings = await run_blocking(pipeline.grab_and_detect, 0)
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
                pipeline.finish, frame, detections, timings, captured_at, "event"
            )
            await agent.store_and_upload(result, None, f"watch:{','.join(matched)}", "event")
        await asyncio.sleep(WATCH_FRAME_PERIOD)

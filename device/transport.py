"""The agent's command transport: the SSE stream, falling back to long-poll where a proxy
buffers or blocks streams, and trying the stream again every few minutes.

Switches are logged once each (one line per switch, not per poll).
"""

from __future__ import annotations

import logging

from device.longpoll import LongPoller
from device.stream import CommandStream, StreamBlocked

logger = logging.getLogger(__name__)

SSE_RETRY_SECONDS = 180.0  # long-poll this long before trying the stream again


class CommandTransport:
    """Runs ``stream`` until it is blocked, then ``poller`` for ``sse_retry_seconds``, again."""

    def __init__(
        self,
        stream: CommandStream,
        poller: LongPoller,
        sse_retry_seconds: float = SSE_RETRY_SECONDS,
    ) -> None:
        self.stream = stream
        self.poller = poller
        self.sse_retry_seconds = sse_retry_seconds
        self.mode = "sse"

    async def run(self) -> None:
        """Until cancelled, or StreamRejected (the cloud refused the device)."""
        while True:
            try:
                await self.stream.run()
                return
            except StreamBlocked as exc:
                logger.warning(
                    "command stream unusable (%s): switching to long-poll, SSE retried in %.0fs",
                    exc,
                    self.sse_retry_seconds,
                )
            self.mode = "long-poll"
            try:
                await self.poller.run_for(self.sse_retry_seconds)
            finally:
                self.mode = "sse"
            logger.info("trying the SSE command stream again after long-polling")

"""Long-poll command transport: `GET /v1/devices/{id}/commands/poll?wait=N`, the same
envelopes as the SSE stream, for networks whose proxies buffer or block streams."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import httpx

from device import __version__
from device.backoff import Backoff
from device.stream import Command, StreamRejected

logger = logging.getLogger(__name__)

POLL_WAIT = 25.0  # seconds the cloud holds a poll open when there is nothing to send
POLL_READ_MARGIN = 15.0  # seconds beyond the wait before a poll counts as lost
MAX_POLL_BACKOFF = 30.0  # seconds


class LongPoller:
    """Polls for commands and hands each to ``on_command`` (which dedupes by command id)."""

    def __init__(
        self,
        api_url: str,
        device_id: str,
        api_key: str,
        on_command: Callable[[Command], Awaitable[None]],
        wait: float = POLL_WAIT,
        retry_delay: float = 2.0,
        on_connect: Callable[[], None] | None = None,
    ) -> None:
        self._url = f"{api_url.rstrip('/')}/v1/devices/{device_id}/commands/poll"
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "User-Agent": f"visant-device/{__version__}",
        }
        self._on_command = on_command
        self._on_connect = on_connect
        self._wait = wait
        self._backoff = Backoff(retry_delay, MAX_POLL_BACKOFF)

    async def run_for(self, seconds: float) -> None:
        """Poll until ``seconds`` have passed; raise StreamRejected if the cloud refuses us."""
        timeout = httpx.Timeout(10.0, read=self._wait + POLL_READ_MARGIN)
        deadline = time.monotonic() + seconds
        answered = False
        async with httpx.AsyncClient(timeout=timeout) as client:
            while time.monotonic() < deadline:
                # The last poll ends by the deadline, so the stream is retried on time.
                wait = max(1.0, min(self._wait, deadline - time.monotonic()))
                delay = await self._poll_once(client, wait)
                if delay is None:
                    if not answered and self._on_connect is not None:
                        self._on_connect()  # like a stream connect: health, spool retry
                    answered = True
                    self._backoff.reset()
                    continue
                await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))

    async def _poll_once(self, client: httpx.AsyncClient, wait: float) -> float | None:
        """One poll; None when it was answered, else the delay before the next one."""
        try:
            response = await client.get(
                self._url, params={"wait": round(wait, 1)}, headers=self._headers
            )
        except httpx.HTTPError as exc:
            logger.debug("long-poll error: %s: %s", type(exc).__name__, exc)
            return self._backoff.next_delay()
        code = response.status_code
        if code in (401, 403, 404):
            raise StreamRejected(code, response.text[:200])
        if code != 200:
            retry_after = response.headers.get("retry-after", "")
            hint = float(retry_after) if retry_after.isdigit() else 0.0
            return max(self._backoff.next_delay(), hint)
        try:
            envelopes = response.json().get("commands") or []
        except (ValueError, AttributeError):
            return self._backoff.next_delay()
        for envelope in envelopes:
            try:
                command = Command.from_envelope(envelope)
            except ValueError as exc:
                logger.warning("ignoring malformed polled command: %s", exc)
                continue
            await self._on_command(command)
        return None

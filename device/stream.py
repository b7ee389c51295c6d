"""SSE command stream client: reconnects with backoff, resumes with Last-Event-ID."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from httpx_sse import ServerSentEvent, SSEError, aconnect_sse

from device import __version__
from device.backoff import Backoff

logger = logging.getLogger(__name__)
T = TypeVar("T")

MAX_RECONNECT_DELAY = 60.0  # seconds, backoff ceiling
HEALTHY_STREAM_SECONDS = 30.0  # a stream open this long resets the backoff
DEVICE_COMMAND_TYPES = ("ping", "diagnostics", "restart")  # answered with a result
COMMAND_TYPES = ("capture", "config", *DEVICE_COMMAND_TYPES)


@dataclass(frozen=True)
class Command:
    """One command envelope from the stream."""

    command_id: str
    type: str
    payload: dict[str, Any] = field(default_factory=dict)
    issued_at: str | None = None
    expires_at: str | None = None

    @classmethod
    def from_json(cls, data: str) -> Command:
        """Parse a ``data:`` envelope; raise ValueError when it is not one."""
        return cls.from_envelope(json.loads(data))

    @classmethod
    def from_envelope(cls, envelope: Any) -> Command:
        """Check a decoded envelope (stream or long-poll); raise ValueError when it is not one."""
        if not isinstance(envelope, dict):
            raise ValueError("envelope is not an object")
        command_id, kind = envelope.get("command_id"), envelope.get("type")
        payload = envelope.get("payload") or {}
        if not isinstance(command_id, str) or not command_id or kind not in COMMAND_TYPES:
            raise ValueError(f"bad envelope: command_id={command_id!r} type={kind!r}")
        if not isinstance(payload, dict):
            raise ValueError("payload is not an object")
        return cls(command_id, kind, payload, envelope.get("issued_at"), envelope.get("expires_at"))


class StreamRejected(Exception):
    """The cloud refused the stream for good (401/403/404): wrong key or unknown device."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(f"{status_code} {detail}")
        self.status_code = status_code
        self.detail = detail


class StreamBlocked(Exception):
    """The stream is unusable here (a buffering proxy, or it keeps failing): try long-poll."""


class _RetryLater(Exception):
    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.delay = delay


def _detail(response: httpx.Response) -> str:
    try:
        return str(json.loads(response.read() or b"{}").get("detail") or response.reason_phrase)
    except (ValueError, AttributeError, httpx.HTTPError):
        return response.reason_phrase


class CommandStream:
    """Holds the device's command stream open and hands each command to ``on_command``.

    ``run()`` returns only by cancellation or by raising StreamRejected; every other
    failure (timeouts, resets, 5xx, server shutdown) ends in a jittered reconnect.
    """

    def __init__(
        self,
        api_url: str,
        device_id: str,
        api_key: str,
        on_command: Callable[[Command], Awaitable[None]],
        read_timeout: float = 70.0,
        reconnect_delay: float = 5.0,
        on_connect: Callable[[], None] | None = None,
        first_byte_timeout: float | None = None,
        failures_before_blocked: int | None = None,
    ) -> None:
        # Both None: reconnect forever (the one-transport behaviour). Set, ``run()`` raises
        # StreamBlocked when no byte (not even `retry:`) comes within ``first_byte_timeout``
        # seconds of the request, or after that many failed attempts in a row.
        self._first_byte_timeout = first_byte_timeout
        self._failures_before_blocked = failures_before_blocked
        self._url = f"{api_url.rstrip('/')}/v1/devices/{device_id}/commands"
        self._api_key = api_key
        self._on_command = on_command
        self._on_connect = on_connect
        self._timeout = httpx.Timeout(10.0, read=read_timeout)
        self.backoff = Backoff(reconnect_delay, MAX_RECONNECT_DELAY)
        self.last_event_id: str | None = None
        self.connected = False

    async def run(self) -> None:
        failures = 0
        async with httpx.AsyncClient(timeout=self._timeout) as client:
            while True:
                started = time.monotonic()
                healthy = False
                hint: float | None = None
                try:
                    healthy = await self._stream_once(client)
                except _RetryLater as exc:
                    logger.warning("command stream: %s", exc)
                    hint = exc.delay
                except httpx.ReadTimeout:
                    logger.warning(
                        "command stream silent for %.0fs; reconnecting", self._timeout.read
                    )
                except (httpx.HTTPError, SSEError) as exc:
                    logger.warning("command stream error: %s: %s", type(exc).__name__, exc)
                finally:
                    self.connected = False
                if healthy or time.monotonic() - started >= HEALTHY_STREAM_SECONDS:
                    self.backoff.reset()
                    failures = 0
                else:
                    failures += 1
                limit = self._failures_before_blocked
                if limit is not None and failures >= limit:
                    raise StreamBlocked(f"the stream failed {failures} times in a row")
                delay = self.backoff.next_delay()
                if hint is not None:
                    delay = max(delay, hint)
                logger.info("reconnecting command stream in %.1fs", delay)
                await asyncio.sleep(delay)

    async def _stream_once(self, client: httpx.AsyncClient) -> bool:
        """Read one stream to its end; True when it ended in a way that warrants no backoff."""
        headers = {
            "Authorization": f"Bearer {self._api_key}",
            "User-Agent": f"visant-device/{__version__}",
        }
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        deadline = asyncio.get_running_loop().time() + (self._first_byte_timeout or 0.0)
        async with contextlib.AsyncExitStack() as stack:
            source = await self._first_bytes(
                stack.enter_async_context(aconnect_sse(client, "GET", self._url, headers=headers)),
                deadline,
            )
            response = source.response
            if response.status_code != 200:
                await response.aread()
                self._raise_for_status(response)
            self.connected = True
            logger.info("command stream connected to %s", self._url)
            if self._on_connect is not None:
                self._on_connect()
            received = False
            events = source.aiter_sse().__aiter__()
            event = await self._first_bytes(_next_or_none(events), deadline)
            while event is not None:
                if event.retry is not None:
                    # The server's reconnect delay becomes the base of our backoff.
                    self.backoff.base = max(0.1, event.retry / 1000.0)
                if event.event == "shutdown":
                    return self._on_shutdown(event)
                if event.event in COMMAND_TYPES and event.data:
                    await self._dispatch(event)
                    received = True
                event = await _next_or_none(events)
            logger.warning("command stream closed by the server")
            return received

    async def _first_bytes(self, step: Awaitable[T], deadline: float) -> T:
        """Await ``step`` (the response headers, then the first event) before the deadline."""
        if self._first_byte_timeout is None:
            return await step
        remaining = max(0.01, deadline - asyncio.get_running_loop().time())
        try:
            return await asyncio.wait_for(step, remaining)
        except asyncio.TimeoutError:
            raise StreamBlocked(
                f"no byte within {self._first_byte_timeout:.0f}s of connecting (a buffering proxy?)"
            ) from None

    def _raise_for_status(self, response: httpx.Response) -> None:
        code = response.status_code
        detail = _detail(response)
        if code in (401, 403, 404):
            raise StreamRejected(code, detail)
        if code == 400 and self.last_event_id:
            self.last_event_id = None  # the server does not know our resume point
            raise _RetryLater(f"400 {detail}; resuming without Last-Event-ID", 0.0)
        retry_after = response.headers.get("retry-after")
        delay = float(retry_after) if retry_after and retry_after.isdigit() else None
        raise _RetryLater(f"server answered {code} {detail}", delay)

    def _on_shutdown(self, event: ServerSentEvent) -> bool:
        try:
            reason = str(json.loads(event.data or "{}").get("reason", ""))
        except (ValueError, AttributeError):
            reason = event.data
        if "replaced" in reason:
            # Two agents with one device id would steal the stream from each other forever;
            # keep backing off so that fight stays slow, and say so.
            logger.error("command stream %s: is another agent using this device id?", reason)
            return False
        logger.info("server closed the command stream (%s)", reason or "shutdown")
        return True

    async def _dispatch(self, event: ServerSentEvent) -> None:
        try:
            command = Command.from_json(event.data)
        except ValueError as exc:
            logger.warning("ignoring malformed %s event %s: %s", event.event, event.id, exc)
            return
        self.last_event_id = event.id or command.command_id
        await self._on_command(command)


async def _next_or_none(events: AsyncIterator[ServerSentEvent]) -> ServerSentEvent | None:
    try:
        return await events.__anext__()
    except StopAsyncIteration:
        return None

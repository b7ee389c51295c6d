"""The device command stream served in front of FastAPI, which handles every other request.

An idle stream's request otherwise stays parked inside FastAPI's middleware, exception and
dependency stack for the stream's whole life: measured with tracemalloc over 2,000 idle
streams, 26 coroutines, 3 AsyncExitStacks and 2 Request objects per stream, most of its
memory, and the stack's CPU is paid again on every open of a reconnect storm. Here a stream is
the uvicorn cycle, this call and the response. The answers (refusals included, as JSON) and the
request metric are the FastAPI route's; that route stays for the OpenAPI document and for
in-process ASGI callers.
"""

from __future__ import annotations

import re

from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from cloud.api.routes.commands import open_command_stream
from cloud.core.errors import error_response
from cloud.metrics.registry import HTTP_REQUESTS

STREAM_PATH = re.compile(r"/v1/devices/([^/]+)/commands")
ROUTE = "/v1/devices/{device_id}/commands"  # the metric label the FastAPI route would give


class StreamFastPath:
    """ASGI app: `GET /v1/devices/{device_id}/commands` here, the rest to `app`."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            match = STREAM_PATH.fullmatch(scope["path"])
            if match is not None:
                await self._stream(match.group(1), scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _stream(self, device_id: str, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.app.state
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name, value)  # the first of repeated headers, as Starlette reads
        status = 200

        async def counted_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            try:
                response = await open_command_stream(
                    state.hub,
                    state.stream_opener,
                    state.settings,
                    device_id,
                    bearer_token(headers.get(b"authorization")),
                    _text(headers.get(b"last-event-id")),
                )
            except Exception as exc:  # noqa: BLE001 - answered as the app's handlers would
                response = error_response(exc, "GET", scope["path"])
            await response(scope, receive, counted_send)
        finally:
            HTTP_REQUESTS.labels(ROUTE, "GET", str(status)).inc()


def bearer_token(header: bytes | None) -> str | None:
    """The `Authorization: Bearer` credentials, as FastAPI's HTTPBearer(auto_error=False) reads
    them: None without the header or with another scheme."""
    scheme, _, credentials = _text(header or b"").partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        return None
    return credentials


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")

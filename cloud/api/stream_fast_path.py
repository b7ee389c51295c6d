"""The device command stream served in front of FastAPI (see cloud/api/fast_paths.py).

A stream here is the uvicorn cycle, this call and the response; the answers (refusals
included) and the request metric are the FastAPI route's.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from cloud.api.raw_request import bearer_token, first_headers, header_text
from cloud.api.routes.commands import open_command_stream
from cloud.core.errors import error_response
from cloud.metrics.registry import HTTP_REQUESTS

ROUTE = "/v1/devices/{device_id}/commands"  # the metric label the FastAPI route would give


async def serve_stream(
    app: FastAPI, device_id: str, scope: Scope, receive: Receive, send: Send
) -> None:
    state = app.state
    headers = first_headers(scope)
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
                header_text(headers.get(b"last-event-id")),
            )
        except Exception as exc:  # noqa: BLE001 - answered as the app's handlers would
            response = error_response(exc, "GET", scope["path"])
        await response(scope, receive, counted_send)
    finally:
        HTTP_REQUESTS.labels(ROUTE, "GET", str(status)).inc()

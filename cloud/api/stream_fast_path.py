"""The device command stream served in front of FastAPI (see cloud/api/fast_paths.py).

A stream here is the uvicorn cycle, this call and the response; the answers (refusals
included) and the request metric are the FastAPI route's.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from cloud.api.raw_request import answer, bearer_token, first_headers, header_text
from cloud.api.routes.commands import open_command_stream

ROUTE = "/v1/devices/{device_id}/commands"  # the metric label the FastAPI route would give


async def serve_stream(
    app: FastAPI, device_id: str, scope: Scope, receive: Receive, send: Send
) -> None:
    state = app.state
    headers = first_headers(scope)
    await answer(
        lambda: open_command_stream(
            state.hub,
            state.stream_opener,
            state.settings,
            device_id,
            bearer_token(headers.get(b"authorization")),
            header_text(headers.get(b"last-event-id")),
        ),
        ROUTE,
        scope,
        receive,
        send,
    )

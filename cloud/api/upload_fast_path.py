"""The capture upload served in front of FastAPI (see cloud/api/fast_paths.py).

A request with a bearer token is served here by the route's own code (`accept_upload`), which
reads and limits the body itself; its refusals are answered as the app's handlers answer them.
A request without one goes to the FastAPI route, whose 401 is then exactly the route's.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from cloud.api.raw_request import answer, bearer_token, first_headers
from cloud.api.routes.captures import accept_upload

ROUTE = "/v1/captures"  # the metric label the FastAPI route would give


async def serve_upload(app: FastAPI, scope: Scope, receive: Receive, send: Send) -> None:
    token = bearer_token(first_headers(scope).get(b"authorization"))
    if token is None:
        await app(scope, receive, send)
        return
    state = app.state
    request = Request(scope, receive)

    async def respond() -> Response:
        return await accept_upload(
            request,
            token,
            state.settings,
            state.session_factory,
            state.upload_batchers,
            state.snapshot_store,
        )

    await answer(respond, ROUTE, scope, receive, send)

"""Reading and answering a request as FastAPI would, for the routes served in front of it
(fast_paths.py)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from cloud.core.asgi import StatusWatchingSend
from cloud.core.errors import error_response
from cloud.metrics.middleware import observe_request


def first_headers(scope: Scope) -> dict[bytes, bytes]:
    """Lower-cased header names to values; the first of repeated headers, as Starlette reads."""
    headers: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name, value)
    return headers


def bearer_token(header: bytes | None) -> str | None:
    """The `Authorization: Bearer` credentials, as FastAPI's HTTPBearer(auto_error=False) reads
    them: None without the header or with another scheme."""
    scheme, _, credentials = header_text(header or b"").partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        return None
    return credentials


def header_text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


async def answer(
    respond: Callable[[], Awaitable[Response]],
    route: str,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """Send `respond()`'s response, or what the app's handlers answer to what it raised;
    count the request under `route` as the metrics middleware would."""
    began = time.perf_counter()
    watched = StatusWatchingSend(send)
    try:
        try:
            response = await respond()
        except Exception as exc:  # noqa: BLE001 - answered as the app's handlers would
            response = error_response(exc, scope["method"], scope["path"])
        await response(scope, receive, watched)
    finally:
        # An exception before the response started is a 500, as the middleware counts it.
        observe_request(route, scope["method"], watched.status or 500, time.perf_counter() - began)

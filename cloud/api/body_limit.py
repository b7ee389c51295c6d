"""Request body limits on every route, enforced while the body streams in.

A pure ASGI middleware, outside FastAPI's parsing: a declared `Content-Length` over the
route's limit is refused before one body byte is read, and a chunked body is counted as it
arrives and refused the moment it passes the limit. Nothing is buffered, and requests
without a body (the command stream's GET among them) pass through untouched, so streaming
responses are never wrapped.

The refusal is raised as an HTTP exception from `receive`: FastAPI re-raises HTTP exceptions
met while reading a body, and the app's handler turns it into `{"detail": ...}` with 413. If
it escapes anyway before the response started, this middleware answers the 413 itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud.core.asgi import StatusWatchingSend

logger = logging.getLogger(__name__)


class BodyTooLarge(HTTPException):
    """The request body is over its route's limit (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds {limit} bytes")
        self.limit = limit


class BodyLimitMiddleware:
    """`default_limit` bytes per body, or the limit `overrides[(METHOD, path)]` names."""

    def __init__(
        self,
        app: ASGIApp,
        default_limit: int,
        overrides: Mapping[tuple[str, str], int] | None = None,
    ) -> None:
        self.app = app
        self.default_limit = default_limit
        self.overrides = dict(overrides or {})

    def limit_for(self, method: str, path: str) -> int:
        return self.overrides.get((method, path.rstrip("/") or "/"), self.default_limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _body_headers(scope)
        if headers is None:  # no body announced: nothing to count, nothing wrapped
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["method"], scope["path"])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await _send_json(send, 400, "invalid Content-Length")
                return
            if length > limit:
                await _send_json(send, 413, BodyTooLarge(limit).detail)
                return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        watched = StatusWatchingSend(send)
        try:
            await self.app(scope, counting_receive, watched)
        except BodyTooLarge as exc:
            if watched.status is not None:  # the response already started
                raise
            logger.info("body over %d bytes refused on %s", exc.limit, scope["path"])
            await _send_json(send, 413, exc.detail)


def _body_headers(scope: Scope) -> dict[bytes, bytes] | None:
    """The request's headers when it announces a body (length > 0 or chunked), else None."""
    headers = dict(scope.get("headers") or ())
    if b"transfer-encoding" in headers:
        return headers
    declared = headers.get(b"content-length")
    if declared is None or declared.strip() == b"0":
        return None
    return headers


async def _send_json(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

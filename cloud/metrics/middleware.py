"""HTTP metrics as a pure ASGI middleware: requests by route template and status, durations.

Pure ASGI (not BaseHTTPMiddleware): that one wraps every response body in a task and a
memory stream, which a 10,000-stream instance pays for on every SSE connection. The label is
the matched route's template (`/v1/devices/{device_id}`), never the raw path, so ids do not
create series; an unmatched path is `unmatched`. Streaming routes count their requests but
are left out of the duration histogram, where their minutes-long lives would drown the rest.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Receive, Scope, Send

from cloud.core.asgi import StatusWatchingSend
from cloud.metrics.registry import HTTP_DURATION, HTTP_REQUESTS, UPLOAD_REFUSALS

STREAMING_SUFFIXES = ("/commands", "/commands/poll")
UPLOAD_ROUTE = ("POST", "/v1/captures")
_REFUSAL_REASONS = {
    401: "unauthorized",
    403: "unauthorized",
    404: "unauthorized",
    413: "too_large",
    429: "rate_limited",
    503: "unavailable",
}


def refusal_reason(status: int) -> str:
    return _REFUSAL_REASONS.get(status, "invalid")


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        watched = StatusWatchingSend(send)
        try:
            await self.app(scope, receive, watched)
        finally:
            # An exception before the response started is a 500.
            self._observe(scope, watched.status or 500, time.perf_counter() - began)

    @staticmethod
    def _observe(scope: Scope, status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        observe_request(route, scope.get("method", "GET"), status, seconds)


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    """Count one request under its route template (also for routes served outside FastAPI)."""
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    if not route.endswith(STREAMING_SUFFIXES):
        HTTP_DURATION.labels(route, method).observe(seconds)
    if (method, route) == UPLOAD_ROUTE and status >= 400:
        UPLOAD_REFUSALS.labels(refusal_reason(status)).inc()

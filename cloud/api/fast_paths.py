"""The three hottest routes served in front of FastAPI, which handles every other request.

- `GET /v1/devices/{device_id}/commands` (cloud/api/stream_fast_path.py): an idle stream
  otherwise stays parked inside FastAPI's middleware, exception and dependency stack for its
  whole life (tracemalloc over 2,000 idle streams: 26 -> 15 KiB and 26 -> 9 coroutines per
  stream), and that stack's CPU is paid again on every open of a reconnect storm.
- `POST /v1/devices/{device_id}/trigger` (cloud/api/trigger_fast_path.py): dependency
  solving and the middleware layers were about half of a manual trigger's request CPU.
- `POST /v1/captures` (cloud/api/upload_fast_path.py): the middleware layers, route matching
  over every route and dependency solving were ~30 % of an upload's event-loop samples.

Both answer as the FastAPI routes do (refusals included, as JSON) and count the same request
metrics; the routes stay for the OpenAPI document and for in-process ASGI callers.
"""

from __future__ import annotations

import re

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from cloud.api.stream_fast_path import serve_stream
from cloud.api.trigger_fast_path import serve_trigger
from cloud.api.upload_fast_path import ROUTE as UPLOAD_PATH
from cloud.api.upload_fast_path import serve_upload

STREAM_PATH = re.compile(r"/v1/devices/([^/]+)/commands")
TRIGGER_PATH = re.compile(r"/v1/devices/([^/]+)/trigger")


class FastPaths:
    """ASGI app: the device stream, the manual trigger and uploads here, the rest to `app`."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method = scope["method"]
            if method == "GET" and (match := STREAM_PATH.fullmatch(scope["path"])):
                await serve_stream(self.app, match.group(1), scope, receive, send)
                return
            if method == "POST" and scope["path"] == UPLOAD_PATH:
                await serve_upload(self.app, scope, receive, send)
                return
            if method == "POST" and (match := TRIGGER_PATH.fullmatch(scope["path"])):
                await serve_trigger(self.app, match.group(1), scope, receive, send)
                return
        await self.app(scope, receive, send)

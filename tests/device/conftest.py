"""A small real HTTP cloud double for the agent's unit tests (uvicorn on a free port).

The real cloud has its own e2e tests (tests/e2e/test_agent_*.py); this one lets a test
script exact stream contents and upload answers (500s, 422s, silence) that the real
server only produces under faults.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.waiting import free_port

DEVICE_ID = "cam-1"
DEVICE_KEY = "vsk_" + "k" * 43


def envelope(command_id: str, kind: str = "capture", **payload: Any) -> dict[str, Any]:
    if kind == "capture":
        payload = {
            "trigger_id": command_id,
            "trigger_type": "manual",
            "trigger_label": "t",
            **payload,
        }
    return {
        "command_id": command_id,
        "type": kind,
        "issued_at": "2026-01-01T00:00:00Z",
        "expires_at": None,
        "payload": payload,
    }


@dataclass
class FakeCloud:
    """Device routes of the contract, with knobs; state is read by the test thread."""

    port: int = field(default_factory=free_port)
    retry_ms: int = 100
    keepalive: float | None = 0.2  # seconds; None: a silent stream
    on_connect: list[dict[str, Any]] = field(default_factory=list)  # resent on every connect
    stream_status: int = 200
    upload_statuses: list[int] = field(default_factory=list)  # answers before the default 201
    upload_delay: float = 0.0  # seconds an upload takes to be answered
    connections: list[dict[str, str]] = field(default_factory=list)
    uploads: list[dict[str, Any]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    acks: list[dict[str, Any]] = field(default_factory=list)
    live: queue.Queue = field(default_factory=queue.Queue)  # envelopes, or ("shutdown", reason)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    _stopping: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {DEVICE_KEY}"

    async def _commands(self, request: Request) -> Response:
        self.connections.append(dict(request.headers))
        if not self._authorized(request):
            return JSONResponse({"detail": "invalid device key"}, status_code=401)
        if request.path_params["device_id"] != DEVICE_ID:
            return JSONResponse({"detail": "device not found"}, status_code=404)
        if self.stream_status != 200:
            return JSONResponse({"detail": "busy"}, status_code=self.stream_status)
        return StreamingResponse(self._events(), media_type="text/event-stream")

    async def _events(self):  # noqa: ANN202 - async generator for StreamingResponse
        yield f"retry: {self.retry_ms}\n\n"
        for item in self.on_connect:
            yield _sse(item)
        last_beat = time.monotonic()
        while not self._stopping:
            try:
                item = self.live.get_nowait()
            except queue.Empty:
                await asyncio.sleep(0.02)
                if self.keepalive is not None and time.monotonic() - last_beat > self.keepalive:
                    last_beat = time.monotonic()
                    yield ": keepalive\n\n"
                continue
            if isinstance(item, tuple) and item[0] == "shutdown":
                yield f"event: shutdown\ndata: {json.dumps({'reason': item[1]})}\n\n"
                return
            yield _sse(item)

    async def _upload(self, request: Request) -> Response:
        form = await request.form()
        await asyncio.sleep(self.upload_delay)
        metadata = json.loads(str(form["metadata"]))
        image = await form["image"].read()  # type: ignore[union-attr]
        status = self.upload_statuses.pop(0) if self.upload_statuses else 201
        if status in (200, 201):
            seen = [
                u
                for u in self.uploads
                if metadata["trigger_id"] and u["trigger_id"] == metadata["trigger_id"]
            ]
            status = 200 if seen else 201
            self.uploads.append(
                {**metadata, "image": image, "authorization": request.headers.get("authorization")}
            )
            return JSONResponse(
                {
                    "record_id": f"cap_{len(self.uploads):032x}",
                    "status": "uploaded",
                    "evaluation_status": "pending",
                },
                status_code=status,
            )
        return JSONResponse({"detail": f"answer {status}"}, status_code=status)

    async def _failed(self, request: Request) -> Response:
        body = await request.json()
        self.failed.append((request.path_params["trigger_id"], body["reason"]))
        return JSONResponse({"trigger_id": request.path_params["trigger_id"], "status": "failed"})

    async def _ack(self, request: Request) -> Response:
        self.acks.append(await request.json())
        return JSONResponse(
            {"device_id": DEVICE_ID, "reported_config_version": self.acks[-1]["version"]}
        )

    def start(self) -> FakeCloud:
        app = Starlette(
            routes=[
                Route("/v1/devices/{device_id}/commands", self._commands),
                Route("/v1/captures", self._upload, methods=["POST"]),
                Route(
                    "/v1/devices/{device_id}/triggers/{trigger_id}/failed",
                    self._failed,
                    methods=["POST"],
                ),
                Route("/v1/devices/{device_id}/config/ack", self._ack, methods=["POST"]),
            ]
        )
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._stopping = False
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "fake cloud did not start"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._stopping = True
        self._server.should_exit = True
        self._thread.join(10)
        assert not self._thread.is_alive(), "fake cloud did not stop"
        self._server = None


def _sse(item: dict[str, Any]) -> str:
    return f"event: {item['type']}\nid: {item['command_id']}\ndata: {json.dumps(item)}\n\n"


@pytest.fixture
def fake_cloud() -> Iterator[FakeCloud]:
    cloud = FakeCloud().start()
    yield cloud
    cloud.stop()


@pytest.fixture
def scene_image(tmp_path: Path) -> Path:
    """A real JPEG file with a recognisable pattern."""
    frame = np.zeros((240, 320, 3), np.uint8)
    cv2.rectangle(frame, (40, 40), (200, 180), (0, 200, 255), -1)
    path = tmp_path / "scene.jpg"
    assert cv2.imwrite(str(path), frame)
    return path

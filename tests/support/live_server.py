"""Run the real app under uvicorn on a free port, in a thread of the test process."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx
from fastapi import FastAPI

from cloud.api.fast_paths import FastPaths
from cloud.app import create_app
from cloud.core.config import Settings
from cloud.core.server import VisantServer, uvicorn_config
from tests.support.waiting import free_port

__all__ = ["LiveServer", "free_port"]

START_TIMEOUT = 15.0  # seconds
STOP_TIMEOUT = 15.0  # seconds


@dataclass
class LiveServer:
    settings: Settings
    database_url: str
    port: int = field(default_factory=free_port)
    app: FastAPI | None = None
    _server: VisantServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        self.app = create_app(self.settings, self.database_url)
        config = uvicorn_config(FastPaths(self.app), "127.0.0.1", self.port, "warning")
        self._server = VisantServer(config, self.app)
        self._thread = threading.Thread(target=self._server.run, name="live-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("live server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> float:
        """Stop the server like Ctrl-C does; returns the seconds it took."""
        assert self._server is not None and self._thread is not None
        began = time.monotonic()
        self._server.announce_shutdown()
        self._server.should_exit = True
        self._thread.join(STOP_TIMEOUT)
        if self._thread.is_alive():
            raise RuntimeError(f"live server did not stop within {STOP_TIMEOUT}s")
        return time.monotonic() - began

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10.0, **kwargs)  # type: ignore[arg-type]

"""Run the app under uvicorn, telling long-lived streams as soon as shutdown begins."""

from __future__ import annotations

import asyncio
import socket
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp

from cloud.core.config import Settings
from cloud.core.tcp import TcpOptions

GRACEFUL_SHUTDOWN_SECONDS = 5  # streams are told to close at once; this bounds stragglers


class VisantServer(uvicorn.Server):
    """uvicorn waits for open connections before the lifespan ends; SSE streams never end by
    themselves, so the shutdown event is set on the signal itself (else SIGTERM waits ~60 s)."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve on a socket bound here, with the half-open detection options of the app's
        settings (cloud/core/tcp.py); accepted connections inherit them."""
        settings: Settings | None = getattr(self._app.state, "settings", None)
        if sockets is None and settings is not None and not self.config.uds and not self.config.fd:
            sock = self.config.bind_socket()
            sock.set_inheritable(False)  # no child process (pg_ctl, a hook) keeps the port
            TcpOptions.from_settings(settings).apply(sock)
            sockets = [sock]
        super().run(sockets=sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.announce_shutdown()
        super().handle_exit(sig, frame)
        # uvicorn re-raises the signal after shutdown, which would kill the process before
        # `python -m cloud` stops the embedded database; a graceful stop exits 0 instead.
        captured = getattr(self, "_captured_signals", None)
        if isinstance(captured, list):
            captured.clear()

    def announce_shutdown(self) -> None:
        """Set the app's shutdown event from any thread (signal handler or a test)."""
        event: asyncio.Event | None = getattr(self._app.state, "shutdown_event", None)
        loop: asyncio.AbstractEventLoop | None = getattr(self._app.state, "loop", None)
        if event is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)


def uvicorn_config(
    app: ASGIApp,
    host: str,
    port: int,
    log_level: str,
    *,
    access_log: bool = False,
    own_logging: bool = False,
) -> uvicorn.Config:
    """`own_logging`: the process configured the root logger (text or JSON) and uvicorn's
    loggers propagate to it, instead of uvicorn installing its own handlers."""
    extra: dict[str, Any] = {"log_config": None} if own_logging else {}
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level.lower(),
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        proxy_headers=True,
        access_log=access_log,
        **extra,
    )

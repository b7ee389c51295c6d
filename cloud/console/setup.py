"""Wiring the console into the app: its routes, static files, broker and error pages."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloud.console.broker import EventBroker
from cloud.console.routes import (
    alerts,
    channels,
    device,
    device_config,
    fleet,
    images,
    live,
    session,
    users,
)
from cloud.console.web import HERE, error_response
from cloud.core.config import Settings
from cloud.events.notify import EVENTS_CHANNEL
from cloud.hub.hub import CommandHub

ROUTERS = (
    session.router,
    fleet.router,
    device.router,
    device_config.router,
    images.router,
    live.router,
    alerts.router,
    channels.router,
    users.router,
)


def install_console(app: FastAPI, settings: Settings) -> None:
    """Routes at `/` beside the API's `/v1`; a browser's unknown path gets a page, not JSON."""
    app.state.console_broker = EventBroker(settings.console_streams_per_user)
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="console-static")
    json_handler = app.exception_handlers[StarletteHTTPException]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if _is_browser_page(request):
            return error_response(request, exc.status_code, _page_message(exc.status_code))
        return await json_handler(request, exc)  # type: ignore[misc]

    app.add_exception_handler(StarletteHTTPException, http_error)


def _is_browser_page(request: Request) -> bool:
    path = request.url.path
    if path.startswith("/v1") or path in ("/health", "/ready", "/metrics"):
        return False
    return "text/html" in request.headers.get("accept", "")


def _page_message(status_code: int) -> str:
    if status_code == 404:
        return "There is no page at this address."
    if status_code == 405:
        return "This address does not take that kind of request."
    return "That request could not be handled."


def listener_channels(app: FastAPI) -> dict[str, object]:
    """The hub's extra LISTEN channels: the console's events go to the broker."""
    return {EVENTS_CHANNEL: app.state.console_broker.publish}


def hear_events_while_streams_open(app: FastAPI, hub: CommandHub) -> None:
    """The hub hears EVENTS_CHANNEL only while a browser stream is open on this instance:
    otherwise every instance would receive and parse every change of every org for nobody."""
    app.state.console_broker.on_demand = functools.partial(hub.want_extra, EVENTS_CHANNEL)


@contextlib.asynccontextmanager
async def closing_streams_on(app: FastAPI, shutdown: asyncio.Event) -> AsyncIterator[None]:
    """While the app serves: on shutdown every browser stream ends at once (else uvicorn
    would wait for them until its graceful timeout)."""
    broker: EventBroker = app.state.console_broker

    async def watch() -> None:
        await shutdown.wait()
        broker.close_all()

    task = asyncio.create_task(watch(), name="console-shutdown-watch")
    try:
        yield
    finally:
        task.cancel()
        broker.close_all()

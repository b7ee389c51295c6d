"""The browser's live stream: one EventSource per open page, fed by the instance's LISTEN."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask

from cloud.console.auth import current_viewer
from cloud.console.broker import CLOSED, EventBroker
from cloud.console.web import ConsoleRoute
from cloud.core.ids import DEVICE_ID
from cloud.events.notify import EVENTS_CHANNEL

logger = logging.getLogger(__name__)
router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
RETRY_MS = 3000  # the browser reconnects this long after the stream ends
SEND_TIMEOUT = 10.0  # seconds; a browser that stops reading is dropped
HEAR_TIMEOUT = 5.0  # seconds the first stream waits for the instance's LISTEN on events


@router.get("/console/events")
async def console_events(request: Request, device: str | None = None) -> Response:
    """Server-sent events of the user's org (`device`: of one device only).

    The session is checked once, in a transaction that ends before the stream starts: an open
    page holds no database connection. Events: `hello` first, then `presence`, `trigger`,
    `capture`, `alert`, `device`, and `resync` when the page should reload what it shows.
    """
    async with request.app.state.session_factory() as session:
        viewer = await current_viewer(request, session)
    if device is not None and not DEVICE_ID.match(device):
        device = None
    broker: EventBroker = request.app.state.console_broker
    subscription = broker.subscribe(viewer.user.org_id, viewer.user.user_id)
    try:
        # The first stream here makes the instance LISTEN for events: `hello` once it hears.
        await request.app.state.hub.until_heard(EVENTS_CHANNEL, HEAR_TIMEOUT)
    except BaseException:
        subscription.close()
        raise
    subscription.live = True

    async def stream() -> AsyncIterator[dict[str, Any]]:
        try:
            yield {"event": "hello", "data": "{}", "retry": RETRY_MS}
            while True:
                event = await subscription.next()
                if event is CLOSED:
                    return
                if device is not None and event.get("device_id") not in (None, device):
                    continue
                yield {"event": event["kind"], "data": json.dumps(event)}
        finally:
            subscription.close()

    return EventSourceResponse(
        stream(),
        # Also when the client left before the stream began (the generator never ran).
        background=BackgroundTask(subscription.close),
        ping=request.app.state.settings.console_keepalive_seconds,
        send_timeout=SEND_TIMEOUT,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )

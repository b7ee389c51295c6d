"""The FastAPI application: factory, lifespan and background components."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from fastapi import FastAPI

from cloud import __version__
from cloud.alerts.delivery import DeliveryWorker
from cloud.alerts.watcher import AlertWatcher
from cloud.api.body_limit import BodyLimitMiddleware
from cloud.api.openapi import document_default_errors
from cloud.api.routes import (
    alerts,
    audit,
    auth,
    captures,
    channels,
    commands,
    device_commands,
    device_health,
    devices,
    health,
    metrics,
    triggers,
    users,
)
from cloud.auth.pruner import Pruner
from cloud.auth.token_cache import TokenCache
from cloud.captures.retention import RetentionWorker
from cloud.captures.storage import build_store
from cloud.captures.upload_batches import upload_batchers
from cloud.console.setup import (
    closing_streams_on,
    hear_events_while_streams_open,
    install_console,
    listener_channels,
)
from cloud.core.config import Settings
from cloud.core.db import create_engine_for, create_session_factory
from cloud.core.errors import install_error_handlers
from cloud.core.logs import set_instance
from cloud.hub.hub import CommandHub
from cloud.hub.stream_open import StreamOpener
from cloud.metrics.middleware import MetricsMiddleware
from cloud.scheduling.scheduler import TriggerScheduler
from cloud.triggers.manual import manual_trigger_batcher
from cloud.triggers.reaper import Reaper

logger = logging.getLogger(__name__)
COMPONENT_STOP_TIMEOUT = 10.0  # seconds


class BackgroundComponent(Protocol):
    """A long-lived worker owned by the app's lifespan (hub, scheduler, reaper...)."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def build_components(app: FastAPI) -> list[BackgroundComponent]:
    """The background components of one instance, in start order (stopped in reverse)."""
    settings: Settings = app.state.settings
    sessions = app.state.session_factory
    # First to start, last to stop: routes reach it through app.state.hub.
    hub = app.state.hub = CommandHub(
        settings,
        app.state.engine,
        sessions,
        app.state.shutdown_event,
        extra_channels=listener_channels(app),
        on_listener_reconnect=app.state.console_broker.resync_all,
        on_extra_heard=app.state.console_broker.resync_live,
    )
    app.state.trigger_batcher = manual_trigger_batcher(app.state.engine, settings, hub.instance_id)
    app.state.upload_batchers = upload_batchers(app.state.engine, settings)
    app.state.stream_opener = StreamOpener(hub, sessions, settings)
    hear_events_while_streams_open(app, hub)
    components: list[BackgroundComponent] = [
        hub,
        Reaper(sessions, settings.keepalive_seconds, settings.reaper_interval_seconds),
        RetentionWorker(
            sessions,
            app.state.snapshot_store,
            settings.retention_days,
            settings.retention_interval_seconds,
            trigger_retention_days=settings.trigger_retention_days,
            orphan_grace_seconds=settings.orphan_snapshot_grace_seconds,
            connection_history_days=settings.connection_history_days,
        ),
        AlertWatcher(sessions, settings.keepalive_seconds, settings.alerts_watch_interval_seconds),
        DeliveryWorker(settings, app.state.engine, sessions, app.state.snapshot_store),
        Pruner(sessions, settings.prune_interval_seconds),
    ]
    # Last in start order: it is the first to stop, so no trigger is made during shutdown.
    if settings.scheduler_enabled:
        components.append(TriggerScheduler.from_settings(sessions, settings))
    return components


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    engine = create_engine_for(app.state.database_url, settings)
    app.state.engine = engine
    app.state.session_factory = create_session_factory(engine)
    app.state.shutdown_event = asyncio.Event()
    app.state.loop = asyncio.get_running_loop()
    components = app.state.components = build_components(app)
    set_instance(app.state.hub.instance_id)
    started: list[BackgroundComponent] = []
    try:
        for component in components:
            await component.start()
            started.append(component)
        logger.info("visant %s serving", __version__)
        app.state.ready = True
        async with closing_streams_on(app, app.state.shutdown_event):
            yield
    finally:
        app.state.ready = False
        app.state.shutdown_event.set()
        # Their statements under way finish (triggers are still handed to streams: the hub
        # stops last).
        for batchers in (app.state.trigger_batcher, app.state.upload_batchers):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(batchers.stop(), COMPONENT_STOP_TIMEOUT)
        for component in reversed(started):
            try:
                await asyncio.wait_for(component.stop(), COMPONENT_STOP_TIMEOUT)
            except Exception:  # noqa: BLE001 - one failing component must not block the rest
                logger.exception("component %s did not stop cleanly", component.name)
        await engine.dispose()


def create_app(settings: Settings, database_url: str) -> FastAPI:
    """An app bound to one database; nothing connects until the lifespan starts."""
    app = FastAPI(
        title="Visant",
        version=__version__,
        summary="Cloud-push capture service for camera fleets",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.database_url = database_url
    app.state.snapshot_store = build_store(settings)
    # Per instance: a token revoked elsewhere stops here within `auth_cache_seconds`.
    app.state.token_cache = TokenCache(settings.auth_cache_seconds)
    install_error_handlers(app)
    # Outermost of the app's own layers: a body over its limit is refused before parsing.
    app.add_middleware(
        BodyLimitMiddleware,
        default_limit=settings.max_json_body_bytes,
        overrides={("POST", "/v1/captures"): settings.max_request_bytes},
    )
    # triggers before devices: its /v1/devices/connected must win over /v1/devices/{device_id}.
    for module in (
        health,
        metrics,
        auth,
        users,
        audit,
        triggers,
        commands,
        device_commands,
        device_health,
        devices,
        captures,
        alerts,
        channels,
    ):
        app.include_router(document_default_errors(module.router))
    # The operator console: pages at `/`, beside the API under `/v1`.
    install_console(app, settings)
    app.add_middleware(MetricsMiddleware)
    return app

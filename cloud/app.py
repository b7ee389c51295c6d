"""The FastAPI application: factory, lifespan and background components."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from fastapi import FastAPI

from cloud import __version__
from cloud.api.routes import auth, captures, commands, devices, health, triggers
from cloud.config import Settings
from cloud.db import create_engine_for, create_session_factory
from cloud.errors import install_error_handlers
from cloud.hub import CommandHub
from cloud.reaper import Reaper
from cloud.retention import RetentionWorker
from cloud.scheduler import TriggerScheduler
from cloud.storage import store_for_app

logger = logging.getLogger(__name__)
COMPONENT_STOP_TIMEOUT = 10.0  # seconds


class BackgroundComponent(Protocol):
    """A long-lived worker owned by the app's lifespan (hub, scheduler, reaper...)."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def build_components(app: FastAPI) -> list[BackgroundComponent]:
    """The background components of one instance, in start order (stopped in reverse)."""
    components: list[BackgroundComponent] = []
    settings: Settings = app.state.settings
    # First to start, last to stop: routes and other components reach it via app.state.hub.
    components.append(CommandHub(app))
    components.append(Reaper(app))
    components.append(
        RetentionWorker(
            app.state.session_factory,
            store_for_app(app),
            settings.retention_days,
            settings.retention_interval_seconds,
        )
    )
    # Last in start order: it is the first to stop, so no trigger is made during shutdown.
    if settings.scheduler_enabled:
        components.append(TriggerScheduler(app.state.session_factory, settings))
    return components


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    engine = create_engine_for(app.state.database_url, settings)
    app.state.engine = engine
    app.state.session_factory = create_session_factory(engine)
    app.state.shutdown_event = asyncio.Event()
    app.state.loop = asyncio.get_running_loop()
    components = build_components(app)
    started: list[BackgroundComponent] = []
    try:
        for component in components:
            await component.start()
            started.append(component)
        logger.info("visant %s serving", __version__)
        yield
    finally:
        app.state.shutdown_event.set()
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
    install_error_handlers(app)
    # triggers before devices: its /v1/devices/connected must win over /v1/devices/{device_id}.
    for module in (health, auth, triggers, commands, devices, captures):
        app.include_router(module.router)
    return app

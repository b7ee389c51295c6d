"""Service identity, health per component, readiness for load balancers."""

from __future__ import annotations

import asyncio
import logging

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from cloud import __version__
from cloud.api.deps import SessionFactoryDep

logger = logging.getLogger(__name__)
router = APIRouter(tags=["health"])
HEALTH_DB_TIMEOUT = 3.0  # seconds
OK = "ok"
# Component (worker) names as /health reports them.
COMPONENT_NAMES = {
    "hub-heartbeat": "hub",
    "trigger-scheduler": "scheduler",
    "alert-watcher": "alerts_watcher",
    "alert-delivery": "alerts_delivery",
}


async def _database(factory: SessionFactoryDep) -> str:
    try:
        async with asyncio.timeout(HEALTH_DB_TIMEOUT), factory() as session:
            await session.execute(sa.text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the database means 503
        logger.warning("health check: database unreachable: %s", exc)
        return "unreachable"
    return OK


@router.get("/v1")
async def identity() -> dict[str, str]:
    """Service name and version."""
    return {"name": "visant", "version": __version__, "docs": "/docs", "console": "/fleet"}


@router.get("/", responses={303: {"description": "a browser: to the operator console"}})
async def root(request: Request) -> Response:
    """A browser goes to the console; any other client gets the name and version."""
    if "text/html" in request.headers.get("accept", ""):
        return RedirectResponse("/fleet", status_code=303)
    return JSONResponse(await identity())


@router.get(
    "/health",
    responses={503: {"description": "a component is down; `components` names it"}},
)
async def health(request: Request, factory: SessionFactoryDep) -> JSONResponse:
    """Each component's state; 503 (`degraded`) when any is down."""
    components = {"database": await _database(factory)}
    hub = getattr(request.app.state, "hub", None)
    if hub is not None:
        components["listener"] = OK if hub.listener_connected else "disconnected"
    for component in getattr(request.app.state, "components", []):
        name = COMPONENT_NAMES.get(component.name, component.name)
        components[name] = OK if component.running else "stopped"
    if not request.app.state.settings.scheduler_enabled:
        components["scheduler"] = "disabled"
    healthy = all(state in (OK, "disabled") for state in components.values())
    return JSONResponse(
        {"status": OK if healthy else "degraded", "components": components},
        status_code=200 if healthy else 503,
    )


@router.get("/ready", responses={503: {"description": "starting or shutting down"}})
async def ready(request: Request) -> JSONResponse:
    """200 while this instance takes traffic; 503 while it starts or shuts down."""
    state = request.app.state
    hub = getattr(state, "hub", None)
    shutting_down = getattr(state, "shutdown_event", None)
    if (
        not getattr(state, "ready", False)
        or hub is None
        or not hub.accepting
        or (shutting_down is not None and shutting_down.is_set())
    ):
        return JSONResponse({"ready": False}, status_code=503)
    return JSONResponse({"ready": True})

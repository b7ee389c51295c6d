"""Service identity and health."""

from __future__ import annotations

import asyncio
import logging

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from cloud import __version__
from cloud.api.deps import SessionFactoryDep

logger = logging.getLogger(__name__)
router = APIRouter(tags=["health"])
HEALTH_DB_TIMEOUT = 3.0  # seconds


@router.get("/")
async def root() -> dict[str, str]:
    """Service name and version."""
    return {"name": "visant", "version": __version__, "docs": "/docs"}


@router.get("/health")
async def health(factory: SessionFactoryDep) -> JSONResponse:
    """200 when the database answers, 503 otherwise."""
    try:
        async with asyncio.timeout(HEALTH_DB_TIMEOUT), factory() as session:
            await session.execute(sa.text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the database means 503
        logger.warning("health check: database unreachable: %s", exc)
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})

"""Snapshot bytes for the console's pages, checked against the session like every page."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from fastapi.responses import Response

from cloud.captures.queries import org_capture
from cloud.captures.storage import SnapshotNotFound
from cloud.console.web import ConsoleRoute, SessionDep, ViewerDep
from cloud.core.errors import ApiError

logger = logging.getLogger(__name__)
router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
CACHE_CONTROL = "private, max-age=86400, immutable"  # a record's image never changes


@router.get("/console/captures/{record_id}/image")
async def capture_image(
    record_id: str, request: Request, viewer: ViewerDep, session: SessionDep
) -> Response:
    capture = await org_capture(session, viewer.user, record_id)
    await session.close()  # the file read needs no connection
    etag = f'"{capture.sha256}"'
    headers = {
        "ETag": etag,
        "Cache-Control": CACHE_CONTROL,
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": "inline",
    }
    if etag in (request.headers.get("if-none-match") or ""):
        return Response(status_code=304, headers=headers)
    try:
        data = await asyncio.to_thread(request.app.state.snapshot_store.get, capture.snapshot_key)
    except SnapshotNotFound as exc:
        logger.warning("capture %s has no snapshot at %s", record_id, capture.snapshot_key)
        raise ApiError(404, "snapshot not found") from exc
    return Response(data, media_type=capture.content_type, headers=headers)

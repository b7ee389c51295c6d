"""Snapshot bytes for the console's pages, checked against the session like every page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from cloud.captures.image_response import snapshot_response
from cloud.captures.queries import org_capture
from cloud.console.web import ConsoleRoute, SessionDep, ViewerDep

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


@router.get("/console/captures/{record_id}/image")
async def capture_image(
    record_id: str, request: Request, viewer: ViewerDep, session: SessionDep
) -> Response:
    capture = await org_capture(session, viewer.user, record_id)
    await session.close()  # the file read needs no connection
    store = request.app.state.snapshot_store
    return await snapshot_response(capture, store, request.headers.get("if-none-match"))

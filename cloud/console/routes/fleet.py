"""The fleet page: every device of the org, paged, filtered, kept live by the page's stream."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from cloud.console.queries import STATUS_FILTERS, fleet_page, fleet_rows
from cloud.console.web import ConsoleRoute, SessionDep, ViewerDep, render
from cloud.core.ids import DEVICE_ID

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
MAX_REFRESH_IDS = 200


@router.get("/fleet")
async def fleet(
    request: Request,
    viewer: ViewerDep,
    session: SessionDep,
    status: Annotated[str | None, Query(max_length=20)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    settings = request.app.state.settings
    status = status if status in STATUS_FILTERS else None
    search = (q or "").strip() or None
    rows, next_cursor = await fleet_page(
        session,
        viewer.user.org_id,
        settings.keepalive_seconds,
        status=status,
        search=search,
        limit=settings.console_page_size,
        cursor=cursor or None,
    )
    context = {
        "viewer": viewer,
        "title": "Fleet",
        "nav": "fleet",
        "rows": rows,
        "next_cursor": next_cursor,
        "status": status or "",
        "q": search or "",
        "statuses": STATUS_FILTERS,
        "first_page": cursor is None,
    }
    return render(request, "fleet.html", context)


@router.get("/console/fleet/rows")
async def fleet_rows_fragment(
    request: Request,
    viewer: ViewerDep,
    session: SessionDep,
    ids: Annotated[str, Query(max_length=MAX_REFRESH_IDS * 65)] = "",
) -> Response:
    """The rows of these devices (comma-separated ids): the page swaps them in after events."""
    device_ids = [i for i in ids.split(",") if DEVICE_ID.match(i)][:MAX_REFRESH_IDS]
    rows = await fleet_rows(
        session, viewer.user.org_id, request.app.state.settings.keepalive_seconds, device_ids
    )
    return render(request, "_fleet_rows.html", {"viewer": viewer, "rows": rows})

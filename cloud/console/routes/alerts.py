"""The alerts page: the org's alerts newest first, live, acknowledged and resolved in place."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from cloud.alerts.queries import acknowledge, resolve
from cloud.console.alert_rows import KINDS, STATES, alert_page, alert_rows, page_filter
from cloud.console.web import ConsoleRoute, OperatorDep, SessionDep, ViewerDep, render, wants_json
from cloud.models import Alert

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
MAX_REFRESH_IDS = 100
NOTICES = {"acknowledged": "Alert acknowledged.", "resolved": "Alert resolved."}
FilterParam = Annotated[str | None, Query(max_length=20)]


def filter_query(kind: str | None, state: str | None, **extra: str) -> str:
    values = {"kind": kind or "", "state": state or "", **extra}
    return urlencode({k: v for k, v in values.items() if v})


@router.get("/alerts")
async def alerts(
    request: Request,
    viewer: ViewerDep,
    session: SessionDep,
    kind: FilterParam = None,
    state: FilterParam = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    where = page_filter(kind, state)
    kind = where.kind.value if where.kind else ""
    state = where.state.value if where.state else ""
    limit = request.app.state.settings.console_page_size
    rows, next_cursor = await alert_page(session, viewer.user, where, limit, cursor or None)
    context = {
        "viewer": viewer,
        "title": "Alerts",
        "nav": "alerts",
        "rows": rows,
        "kind": kind,
        "state": state,
        "kinds": KINDS,
        "states": STATES,
        "filter_query": filter_query(kind, state),
        "back": "/alerts?" + filter_query(kind, state),
        "next_query": filter_query(kind, state, cursor=next_cursor) if next_cursor else None,
        "first_page": cursor is None,
        "notice": NOTICES.get(request.query_params.get("done", "")),
    }
    return render(request, "alerts.html", context)


@router.get("/console/alerts/rows")
async def alert_rows_fragment(
    request: Request,
    viewer: ViewerDep,
    session: SessionDep,
    ids: Annotated[str, Query(max_length=MAX_REFRESH_IDS * 41)] = "",
    kind: FilterParam = None,
    state: FilterParam = None,
) -> Response:
    """The rows of these alerts that pass the page's filter: new ones are put on top, changed
    ones swapped in, and one that no longer passes (acknowledged under `open`) goes away."""
    where = page_filter(kind, state)
    rows = await alert_rows(session, viewer.user, ids.split(",")[:MAX_REFRESH_IDS], where)
    back = "/alerts?" + filter_query(kind if where.kind else None, state if where.state else None)
    return render(request, "_alert_rows.html", {"viewer": viewer, "rows": rows, "back": back})


def _done(request: Request, alert: Alert, back: str, done: str) -> Response:
    if wants_json(request):
        return JSONResponse({"alert_id": alert.alert_id, "state": alert.state.value})
    target = back if back.startswith("/alerts") and not back.startswith("//") else "/alerts"
    separator = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{separator}done={done}", status_code=303)


@router.post("/alerts/{alert_id}/acknowledge")
async def acknowledge_alert(
    request: Request,
    alert_id: str,
    viewer: OperatorDep,
    session: SessionDep,
    back: Annotated[str, Form(max_length=500)] = "/alerts",
) -> Response:
    """The API's own acknowledge: open -> acknowledged, a resolved alert is a 409 message."""
    alert = await acknowledge(session, viewer.user, alert_id)
    return _done(request, alert, back, "acknowledged")


@router.post("/alerts/{alert_id}/resolve")
async def resolve_alert(
    request: Request,
    alert_id: str,
    viewer: OperatorDep,
    session: SessionDep,
    back: Annotated[str, Form(max_length=500)] = "/alerts",
) -> Response:
    alert = await resolve(session, viewer.user, alert_id)
    return _done(request, alert, back, "resolved")

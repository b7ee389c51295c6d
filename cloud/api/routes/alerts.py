"""Alerts: list, read, acknowledge, resolve; and the signed snapshot links notifications carry."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Query, Response

from cloud.alerts.image_links import image_link_valid
from cloud.alerts.queries import (
    AlertFilter,
    acknowledge,
    list_alerts,
    org_alert,
    resolve,
    snapshot_of,
)
from cloud.api.deps import CurrentUser, OperatorUser, SessionDep, SettingsDep, StoreDep
from cloud.api.schemas.alerts import AlertList, AlertOut
from cloud.captures.storage import SnapshotNotFound
from cloud.core.errors import ApiError
from cloud.core.ids import RECORD_ID
from cloud.models import AlertKind, AlertState

router = APIRouter(tags=["alerts"])

DEFAULT_PAGE = 100
MAX_PAGE = 500
IMAGE_NOT_AVAILABLE = "image link invalid or expired"


@router.get("/v1/alerts", response_model=AlertList)
async def get_alerts(
    user: CurrentUser,
    session: SessionDep,
    device_id: Annotated[str | None, Query(max_length=64)] = None,
    kind: AlertKind | None = None,
    state: AlertState | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> AlertList:
    """The org's alerts, newest first, filtered; follow `next_cursor` for more."""
    alerts, next_cursor = await list_alerts(
        session, user, AlertFilter(device_id, kind, state), limit, cursor
    )
    return AlertList(alerts=[AlertOut.model_validate(a) for a in alerts], next_cursor=next_cursor)


@router.get("/v1/alerts/{alert_id}", response_model=AlertOut)
async def get_alert(alert_id: str, user: CurrentUser, session: SessionDep) -> AlertOut:
    """One alert of the org."""
    return AlertOut.model_validate(await org_alert(session, user, alert_id))


@router.post("/v1/alerts/{alert_id}/acknowledge", response_model=AlertOut)
async def acknowledge_alert(alert_id: str, user: OperatorUser, session: SessionDep) -> AlertOut:
    """Someone is on it: open -> acknowledged; 409 when already resolved."""
    return AlertOut.model_validate(await acknowledge(session, user, alert_id))


@router.post("/v1/alerts/{alert_id}/resolve", response_model=AlertOut)
async def resolve_alert(alert_id: str, user: OperatorUser, session: SessionDep) -> AlertOut:
    """Close the alert (open or acknowledged -> resolved)."""
    return AlertOut.model_validate(await resolve(session, user, alert_id))


@router.get(
    "/v1/alert-images/{capture_id}",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 403: {"description": IMAGE_NOT_AVAILABLE}},
)
async def alert_image(
    capture_id: str,
    session: SessionDep,
    settings: SettingsDep,
    store: StoreDep,
    expires: Annotated[int, Query(ge=0)],
    sig: Annotated[str, Query(min_length=64, max_length=64)],
) -> Response:
    """A detection's snapshot, for the signed link in a webhook notification (no token)."""
    # The signature is checked before any lookup: an unsigned caller learns nothing.
    if not RECORD_ID.match(capture_id) or not image_link_valid(
        settings.secret_key, capture_id, expires, sig, time.time()
    ):
        raise ApiError(403, IMAGE_NOT_AVAILABLE)
    snapshot = await snapshot_of(session, capture_id)
    if snapshot is None:
        raise ApiError(404, "capture not found")
    try:
        image = await asyncio.to_thread(store.get, snapshot[0])
    except SnapshotNotFound as exc:
        raise ApiError(404, "snapshot not found") from exc
    return Response(image, media_type=snapshot[1], headers={"Cache-Control": "private"})

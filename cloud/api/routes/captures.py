"""Capture upload (device key) and browsing (user token, own org only)."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloud.api.deps import (
    BearerToken,
    CurrentUser,
    SessionDep,
    SessionFactoryDep,
    SettingsDep,
    StoreDep,
    UploadBatchersDep,
)
from cloud.api.schemas.captures import CaptureAccepted, CaptureList, CaptureOut
from cloud.api.schemas.errors import responses
from cloud.api.upload_body import UPLOAD_REQUEST_BODY, UPLOAD_RESPONSES, read_upload
from cloud.auth.service import checked_secret
from cloud.captures.image_response import snapshot_response
from cloud.captures.images import ImageRejected, inspect_image
from cloud.captures.ingest import ingest_capture
from cloud.captures.metadata import CAPTURE_ID_PATTERN
from cloud.captures.queries import MAX_PAGE, CaptureFilter, list_captures, org_capture
from cloud.captures.storage import SnapshotStore
from cloud.captures.upload_batches import UploadBatchers
from cloud.core.config import Settings
from cloud.core.errors import ApiError
from cloud.core.ids import DEVICE_ID_PATTERN
from cloud.core.schema_types import AwareUtcDateTime
from cloud.core.security import DEVICE_KEY_PREFIX

CAPTURE_ID = re.compile(CAPTURE_ID_PATTERN)
router = APIRouter(prefix="/v1/captures", tags=["captures"])


@router.post(
    "",
    response_model=CaptureAccepted,
    status_code=201,
    responses=UPLOAD_RESPONSES,
    openapi_extra={"requestBody": UPLOAD_REQUEST_BODY},
)
async def upload_capture(
    request: Request,
    token: BearerToken,
    settings: SettingsDep,
    session_factory: SessionFactoryDep,
    batchers: UploadBatchersDep,
    store: StoreDep,
) -> JSONResponse:
    """Store a snapshot with its detections; closes its trigger. Multipart or JSON body."""
    return await accept_upload(request, token, settings, session_factory, batchers, store)


async def accept_upload(
    request: Request,
    token: str | None,
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    batchers: UploadBatchers,
    store: SnapshotStore,
) -> JSONResponse:
    """The upload route's work (also served in front of FastAPI: cloud/api/upload_fast_path.py):
    201 with the new record, 200 with the one an earlier try of this upload stored."""
    checked_secret(token, DEVICE_KEY_PREFIX)  # a missing or malformed key: 401, body unread
    upload = await read_upload(request, settings.max_request_bytes, settings.max_image_bytes)
    try:
        info = inspect_image(upload.image, settings.max_image_bytes, settings.max_image_pixels)
    except ImageRejected as exc:
        raise ApiError(exc.status_code, exc.detail) from exc
    metadata = upload.metadata
    idempotency_key = request.headers.get("idempotency-key")
    if metadata.capture_id is None and idempotency_key:
        if not CAPTURE_ID.fullmatch(idempotency_key):
            raise ApiError(422, "Idempotency-Key must match " + CAPTURE_ID_PATTERN)
        metadata = metadata.model_copy(update={"capture_id": idempotency_key})
    result = await ingest_capture(
        session_factory, batchers, store, settings, token, metadata, upload.image, info
    )
    body = CaptureAccepted(record_id=result.record_id, evaluation_status=result.evaluation_status)
    return JSONResponse(body.model_dump(mode="json"), status_code=201 if result.created else 200)


@router.get("", response_model=CaptureList, responses=responses(401, 422, 503))
async def browse_captures(
    user: CurrentUser,
    session: SessionDep,
    device_id: Annotated[str | None, Query(pattern=DEVICE_ID_PATTERN)] = None,
    since: Annotated[AwareUtcDateTime | None, Query(description="captured_at >= since")] = None,
    until: Annotated[AwareUtcDateTime | None, Query(description="captured_at < until")] = None,
    alert: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> CaptureList:
    """The org's captures, newest first; follow `next_cursor` for older ones."""
    where = CaptureFilter(device_id=device_id, since=since, until=until, alert=alert)
    page, next_cursor = await list_captures(session, user, where, limit, cursor)
    return CaptureList(
        captures=[CaptureOut.model_validate(c) for c in page], next_cursor=next_cursor
    )


@router.get("/{record_id}", response_model=CaptureOut, responses=responses(401, 404, 503))
async def get_capture(record_id: str, user: CurrentUser, session: SessionDep) -> CaptureOut:
    """One capture of the org, with its detections and evaluation."""
    return CaptureOut.model_validate(await org_capture(session, user, record_id))


@router.get(
    "/{record_id}/image",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}, "image/png": {}}, "description": "The snapshot"},
        304: {"description": "Not modified (If-None-Match matched the ETag)"},
        **responses(401, 404, 503),
    },
)
async def get_capture_image(
    record_id: str, request: Request, user: CurrentUser, session: SessionDep, store: StoreDep
) -> Response:
    """The snapshot bytes; ETag is the sha256, so `If-None-Match` answers 304."""
    capture = await org_capture(session, user, record_id)
    await session.close()  # the file read needs no connection
    return await snapshot_response(capture, store, request.headers.get("if-none-match"))

"""Browsing captures of the user's org: filters, keyset pagination, one record, its image."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.errors import ApiError
from cloud.models import Capture, Device, User
from cloud.storage import RECORD_ID_PATTERN

_RECORD_ID = re.compile(RECORD_ID_PATTERN)
MAX_PAGE = 200


@dataclass(frozen=True)
class CaptureFilter:
    device_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    alert: bool | None = None


def encode_cursor(capture: Capture) -> str:
    """An opaque token for the page after `capture` (newest first)."""
    raw = json.dumps([capture.captured_at.isoformat(), capture.record_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """(captured_at, record_id) of the last item seen; 422 when the cursor is not ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        moment, record_id = json.loads(raw)
        captured_at = datetime.fromisoformat(moment)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ApiError(422, "invalid cursor") from exc
    if captured_at.tzinfo is None or not isinstance(record_id, str):
        raise ApiError(422, "invalid cursor")
    if not _RECORD_ID.fullmatch(record_id):
        raise ApiError(422, "invalid cursor")
    return captured_at, record_id


async def list_captures(
    session: AsyncSession,
    user: User,
    where: CaptureFilter,
    limit: int,
    cursor: str | None,
) -> tuple[list[Capture], str | None]:
    """A page of the org's captures, newest first, and the cursor of the next page."""
    alert = Capture.evaluation_result["alert"].as_boolean()
    query = (
        sa.select(Capture)
        .join(Device, Device.device_id == Capture.device_id)
        .where(Device.org_id == user.org_id)
        .order_by(Capture.captured_at.desc(), Capture.record_id.desc())
        .limit(min(limit, MAX_PAGE) + 1)
    )
    if where.device_id is not None:
        query = query.where(Capture.device_id == where.device_id)
    if where.since is not None:
        query = query.where(Capture.captured_at >= where.since)
    if where.until is not None:
        query = query.where(Capture.captured_at < where.until)
    if where.alert is True:
        query = query.where(alert.is_(True))
    elif where.alert is False:
        query = query.where(sa.func.coalesce(alert, sa.false()).is_(False))
    if cursor is not None:
        captured_at, record_id = decode_cursor(cursor)
        query = query.where(
            sa.tuple_(Capture.captured_at, Capture.record_id) < sa.tuple_(captured_at, record_id)
        )
    rows = list(await session.scalars(query))
    page = rows[: min(limit, MAX_PAGE)]
    next_cursor = encode_cursor(page[-1]) if len(rows) > len(page) else None
    return page, next_cursor


async def org_capture(session: AsyncSession, user: User, record_id: str) -> Capture:
    """One capture of the user's org; 404 for a malformed id or another org's capture."""
    if not _RECORD_ID.fullmatch(record_id):
        raise ApiError(404, "capture not found")
    capture = await session.scalar(
        sa.select(Capture)
        .join(Device, Device.device_id == Capture.device_id)
        .where(Capture.record_id == record_id, Device.org_id == user.org_id)
    )
    if capture is None:
        raise ApiError(404, "capture not found")
    return capture

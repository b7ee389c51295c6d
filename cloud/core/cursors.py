"""Opaque keyset-pagination cursors: (timestamp, id) of the last item of a page."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime

from cloud.core.errors import ApiError
from cloud.core.schema_types import utc_datetime


def encode_cursor(moment: datetime, item_id: str) -> str:
    """A token for the page after the item at (`moment`, `item_id`)."""
    raw = json.dumps([moment.isoformat(), item_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, id_pattern: re.Pattern[str]) -> tuple[datetime, str]:
    """(moment, item_id) of a cursor we issued; 422 for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        moment, item_id = json.loads(raw)
        parsed = datetime.fromisoformat(moment)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ApiError(422, "invalid cursor") from exc
    if parsed.tzinfo is None or not isinstance(item_id, str) or not id_pattern.fullmatch(item_id):
        raise ApiError(422, "invalid cursor")
    try:
        return utc_datetime(parsed), item_id
    except ValueError as exc:
        raise ApiError(422, "invalid cursor") from exc

"""A capture's snapshot as an HTTP response: ETag, caching, 304 and the safe headers.

Shared by the API's image route and the console's, which differ only in how they authenticate.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.responses import Response

from cloud.captures.storage import SnapshotNotFound, SnapshotStore
from cloud.core.errors import ApiError
from cloud.models import Capture

logger = logging.getLogger(__name__)
IMAGE_CACHE_CONTROL = "private, max-age=86400, immutable"  # a record's image never changes


async def snapshot_response(
    capture: Capture, store: SnapshotStore, if_none_match: str | None
) -> Response:
    """The snapshot bytes; the ETag is the sha256, so a matching `If-None-Match` is a 304."""
    etag = f'"{capture.sha256}"'
    headers = {
        "ETag": etag,
        "Cache-Control": IMAGE_CACHE_CONTROL,
        # The bytes are what the device sent: never let a browser sniff them into HTML.
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": "inline",
    }
    if _etags(if_none_match) & {etag, "*"}:
        return Response(status_code=304, headers=headers)
    try:
        data = await asyncio.to_thread(store.get, capture.snapshot_key)
    except SnapshotNotFound as exc:
        logger.warning("capture %s has no snapshot at %s", capture.record_id, capture.snapshot_key)
        raise ApiError(404, "snapshot not found") from exc
    return Response(data, media_type=capture.content_type, headers=headers)


def _etags(header: str | None) -> set[str]:
    """The entity tags an If-None-Match header lists (weak ones compared by value)."""
    if not header:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}

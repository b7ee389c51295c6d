"""Dependencies of the capture routes: the snapshot store and the upload rate limiter."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from cloud.ratelimit import RateLimiter
from cloud.storage import SnapshotStore, store_for_app


async def get_snapshot_store(request: Request) -> SnapshotStore:
    # async: a plain `def` dependency would cost a thread-pool hop on every upload
    return store_for_app(request.app)


async def get_upload_limiter(request: Request) -> RateLimiter:
    """One limiter per instance: a device spread over N instances gets N times the rate."""
    state = request.app.state
    limiter: RateLimiter | None = getattr(state, "upload_limiter", None)
    if limiter is None:
        limiter = state.upload_limiter = RateLimiter(state.settings.uploads_per_device_per_minute)
    return limiter


StoreDep = Annotated[SnapshotStore, Depends(get_snapshot_store)]
LimiterDep = Annotated[RateLimiter, Depends(get_upload_limiter)]

"""Fixed-window counters in `rate_counters`: one upsert per event, shared by every instance.

A key's window is `floor(now / window)`; the upsert adds one and returns the new count, so
concurrent instances see one sequence. An over-limit event is still counted (a client that
keeps hammering stays refused until the window ends). Fixed windows can let up to twice the
limit through across a window boundary; that is the price of one row and one statement.
Rows live until their window ends plus a margin; `prune_counters` removes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.core.errors import ApiError
from cloud.models import RateCounter

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Limit:
    """At most `count` events per `window_seconds` for each key under `prefix`."""

    prefix: str
    count: int
    window_seconds: int

    def window_of(self, now: datetime) -> tuple[datetime, datetime]:
        seconds = (now - EPOCH).total_seconds()
        start = EPOCH + timedelta(seconds=seconds // self.window_seconds * self.window_seconds)
        return start, start + timedelta(seconds=self.window_seconds)

    def row_key(self, key: str) -> str:
        """The `rate_counters.key` of `key` under this limit."""
        return f"{self.prefix}:{key}"

    def wait_after(self, count: int | None, now: datetime) -> float | None:
        """None when `count` is within the limit, else the seconds until the window ends."""
        if count is not None and count > self.count:
            return max((self.window_of(now)[1] - now).total_seconds(), 0.001)
        return None


async def hit(
    session: AsyncSession, limit: Limit, key: str, now: datetime | None = None
) -> float | None:
    """Count one event: None when within the limit, else the seconds until the window ends."""
    now = now or datetime.now(UTC)
    start, end = limit.window_of(now)
    statement = (
        insert(RateCounter)
        .values(key=limit.row_key(key), window_start=start, count=1, expires_at=end)
        .on_conflict_do_update(
            index_elements=[RateCounter.key, RateCounter.window_start],
            set_={"count": RateCounter.count + 1},
        )
        .returning(RateCounter.count)
    )
    return limit.wait_after(await session.scalar(statement), now)


async def forgive(
    session: AsyncSession, limit: Limit, key: str, now: datetime | None = None
) -> None:
    """Take one event back (e.g. a login that succeeded counts against nobody)."""
    start, _ = limit.window_of(now or datetime.now(UTC))
    await session.execute(
        sa.update(RateCounter)
        .where(
            RateCounter.key == limit.row_key(key),
            RateCounter.window_start == start,
            RateCounter.count > 0,
        )
        .values(count=RateCounter.count - 1)
    )


def too_many(detail: str, wait: float) -> ApiError:
    """429 with a Retry-After in whole seconds."""
    return ApiError(429, detail, {"Retry-After": str(max(1, math.ceil(wait)))})


async def prune_counters(session: AsyncSession, now: datetime | None = None) -> int:
    """Delete the counters whose window has ended; returns how many went."""
    result = await session.execute(
        sa.delete(RateCounter).where(RateCounter.expires_at < (now or datetime.now(UTC)))
    )
    return result.rowcount or 0

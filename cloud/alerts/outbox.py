"""The notification outbox: rows written with their alert, claimed by senders with SKIP LOCKED.

A claim is a short transaction that takes due rows no other instance holds (`FOR UPDATE SKIP
LOCKED`) and pushes their `next_attempt_at` past a lease, then commits: no transaction stays
open while a receiver answers. A sender that dies mid-send leaves the row to be claimed again
once the lease passes (at-least-once; the webhook id lets receivers drop the repeat). Each
attempt's outcome is one more short transaction.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.core.ids import new_notification_id
from cloud.models import (
    AttemptOutcome,
    ChannelKind,
    Notification,
    NotificationAttempt,
    NotificationState,
)

ALERTS_CHANNEL = "visant_alerts"  # NOTIFY channel: the outbox has new rows


@dataclass(frozen=True)
class Claimed:
    """A notification claimed for one attempt, with what its channel needs to send it."""

    notification_id: str
    channel_id: str
    attempt: int
    event_type: str
    payload: dict[str, Any]
    created_at: datetime
    kind: ChannelKind
    url_ciphertext: str
    secret_ciphertext: str | None


@dataclass(frozen=True)
class AttemptResult:
    outcome: AttemptOutcome
    started_at: datetime
    duration_ms: float
    http_status: int | None = None
    error: str | None = None


async def enqueue(
    session: AsyncSession, rows: Sequence[dict[str, Any]], wake: bool = True
) -> list[str]:
    """Insert outbox rows (channel_id, alert_id, event_type, payload) and wake the senders."""
    if not rows:
        return []
    values = [{"notification_id": new_notification_id(), **row} for row in rows]
    await session.execute(insert(Notification), values)
    if wake:
        # Delivered at commit only, so a sender never looks before the rows are visible.
        await session.execute(sa.select(sa.func.pg_notify(ALERTS_CHANNEL, "")))
    return [value["notification_id"] for value in values]


_CLAIM = sa.text(
    """
    WITH due AS (
        SELECT notification_id FROM notifications
        WHERE state = 'pending' AND next_attempt_at <= now()
        ORDER BY next_attempt_at
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE notifications AS n
    SET attempts = n.attempts + 1, next_attempt_at = now() + make_interval(secs => :lease)
    FROM due, alert_channels AS c
    WHERE n.notification_id = due.notification_id AND c.channel_id = n.channel_id
    RETURNING n.notification_id, n.channel_id, n.attempts, n.event_type, n.payload,
              n.created_at, c.kind, c.url_ciphertext, c.secret_ciphertext
    """
)


async def claim_due(session: AsyncSession, limit: int, lease_seconds: float) -> list[Claimed]:
    """Take up to `limit` due notifications for one attempt each (committed by the caller)."""
    rows = await session.execute(_CLAIM, {"limit": limit, "lease": lease_seconds})
    return [
        Claimed(
            notification_id=row.notification_id,
            channel_id=row.channel_id,
            attempt=row.attempts,
            event_type=row.event_type,
            payload=row.payload,
            created_at=row.created_at,
            kind=ChannelKind(row.kind),
            url_ciphertext=row.url_ciphertext,
            secret_ciphertext=row.secret_ciphertext,
        )
        for row in rows
    ]


def retry_delay(attempt: int, base: float, cap: float) -> float:
    """Capped exponential backoff with full jitter: uniform in [base/2, min(cap, base*2^(n-1))]."""
    ceiling = min(cap, base * 2 ** (attempt - 1))
    return random.uniform(min(base / 2, ceiling), ceiling)  # noqa: S311 - jitter, not a secret


async def record_attempt(
    session: AsyncSession,
    claimed: Claimed,
    result: AttemptResult,
    max_attempts: int,
    retry_in: float,
) -> NotificationState:
    """Log the attempt and move the notification on: delivered, retried later, or failed."""
    session.add(
        NotificationAttempt(
            notification_id=claimed.notification_id,
            channel_id=claimed.channel_id,
            attempt=claimed.attempt,
            started_at=result.started_at,
            duration_ms=result.duration_ms,
            outcome=result.outcome,
            http_status=result.http_status,
            error=result.error,
        )
    )
    if result.outcome is AttemptOutcome.DELIVERED:
        state = NotificationState.DELIVERED
        values: dict[str, Any] = {"delivered_at": sa.func.now(), "last_error": None}
    elif claimed.attempt >= max_attempts:
        state = NotificationState.FAILED
        values = {"last_error": result.error}
    else:
        state = NotificationState.PENDING
        values = {
            "last_error": result.error,
            "next_attempt_at": sa.func.now() + sa.func.make_interval(0, 0, 0, 0, 0, 0, retry_in),
        }
    await session.execute(
        sa.update(Notification)
        .where(
            Notification.notification_id == claimed.notification_id,
            # A row claimed again after its lease (this sender was slow) keeps the newer count.
            Notification.attempts == claimed.attempt,
            Notification.state == NotificationState.PENDING,
        )
        .values(state=state, **values)
    )
    return state

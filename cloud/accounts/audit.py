"""The audit log: who changed what, when. Written in the caller's transaction, read by admins."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.core.cursors import decode_cursor, encode_cursor
from cloud.models import AuditEntry, User

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TARGET_LIMIT = 200  # characters of the target column


class AuditAction(StrEnum):
    """Stable action names; other packages may record their own (e.g. `channel.updated`)."""

    CONFIG_PUSHED = "device.config_pushed"
    DEVICE_STATUS_CHANGED = "device.status_changed"
    KEY_ROTATED = "device.key_rotated"
    DEVICE_DELETED = "device.deleted"
    MANUAL_TRIGGER = "trigger.manual"
    USER_CREATED = "user.created"
    ROLE_CHANGED = "user.role_changed"
    USER_DEACTIVATED = "user.deactivated"
    USER_REACTIVATED = "user.reactivated"
    PASSWORD_CHANGED = "user.password_changed"
    TOKENS_REVOKED = "user.tokens_revoked"
    ORG_CREATED = "org.created"


async def record_audit(
    session: AsyncSession,
    actor: User | None,
    action: str,
    target: str,
    details: dict[str, Any] | None = None,
    *,
    org_id: uuid.UUID | None = None,
) -> None:
    """Add an audit entry to the caller's transaction (it is kept only if that commits).

    `actor` None means the operator's command line (`python -m cloud ...`); then `org_id` names
    the org the entry belongs to.
    """
    owner = org_id if org_id is not None else (actor.org_id if actor is not None else None)
    if owner is None:
        raise ValueError("an audit entry needs an actor or an org_id")
    session.add(
        AuditEntry(
            org_id=owner,
            actor_user_id=actor.user_id if actor is not None else None,
            actor_email=actor.email if actor is not None else None,
            action=str(action),
            target=target[:TARGET_LIMIT],
            details=details or {},
        )
    )


async def audit_page(
    session: AsyncSession, org_id: uuid.UUID, limit: int, cursor: str | None
) -> tuple[Sequence[AuditEntry], str | None]:
    """The org's audit entries, newest first, one page; the next page's cursor or None."""
    query = sa.select(AuditEntry).where(AuditEntry.org_id == org_id)
    if cursor is not None:
        moment, audit_id = decode_cursor(cursor, _UUID)
        query = query.where(
            sa.tuple_(AuditEntry.created_at, AuditEntry.audit_id)
            < sa.tuple_(sa.literal(moment), sa.literal(uuid.UUID(audit_id)))
        )
    rows = list(
        await session.scalars(
            query.order_by(AuditEntry.created_at.desc(), AuditEntry.audit_id.desc()).limit(
                limit + 1
            )
        )
    )
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(last.created_at, str(last.audit_id))
    return rows[:limit], next_cursor

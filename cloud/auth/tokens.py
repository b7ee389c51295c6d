"""User tokens after login: revoke one, revoke a user's, prune the dead ones."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.core.config import Settings
from cloud.core.errors import ApiError
from cloud.core.security import hash_secret
from cloud.models import User, UserToken

# A revoked or expired token row is kept this long (for listing and audits), then deleted.
DEAD_TOKEN_KEEP = timedelta(days=1)


async def revoke_token(session: AsyncSession, settings: Settings, token: str) -> int:
    """Revoke the presented token (already authenticated); returns rows changed."""
    result = await session.execute(
        sa.update(UserToken)
        .where(
            UserToken.token_hash == hash_secret(token, settings.secret_key),
            UserToken.revoked_at.is_(None),
        )
        .values(revoked_at=sa.func.now())
    )
    return result.rowcount or 0


async def revoke_user_tokens(session: AsyncSession, admin: User, user_id: uuid.UUID) -> int:
    """Revoke every live token of a user of the admin's org; 404 for anyone else."""
    target = await session.get(User, user_id)
    if target is None or target.org_id != admin.org_id:
        raise ApiError(404, "user not found")
    result = await session.execute(
        sa.update(UserToken)
        .where(UserToken.user_id == user_id, UserToken.revoked_at.is_(None))
        .values(revoked_at=sa.func.now())
    )
    return result.rowcount or 0


async def prune_dead_tokens(session: AsyncSession, now: datetime | None = None) -> int:
    """Delete tokens expired or revoked more than DEAD_TOKEN_KEEP ago."""
    cutoff = (now or datetime.now(UTC)) - DEAD_TOKEN_KEEP
    result = await session.execute(
        sa.delete(UserToken).where(
            sa.or_(UserToken.expires_at < cutoff, UserToken.revoked_at < cutoff)
        )
    )
    return result.rowcount or 0

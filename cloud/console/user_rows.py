"""What the users page reads: the org's users with their latest sign-in (their newest token)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.accounts.users import users_of
from cloud.models import User, UserToken


@dataclass(frozen=True)
class UserRow:
    user: User
    last_sign_in: datetime | None


async def user_rows(session: AsyncSession, org_id: uuid.UUID) -> list[UserRow]:
    """Users by email; a sign-in (console or API) issues a token, so the newest one's time is
    the last sign-in (expired and revoked tokens count: they are kept until cleaned up)."""
    users = await users_of(session, org_id)
    result = await session.execute(
        sa.select(UserToken.user_id, sa.func.max(UserToken.created_at))
        .join(User, User.user_id == UserToken.user_id)
        .where(User.org_id == org_id)
        .group_by(UserToken.user_id)
    )
    latest = {user_id: at for user_id, at in result}
    return [UserRow(user, latest.get(user.user_id)) for user in users]

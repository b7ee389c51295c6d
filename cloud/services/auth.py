"""User login: password check and bearer-token issue."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.config import Settings
from cloud.models import User, UserToken
from cloud.security import USER_TOKEN_PREFIX, hash_secret, new_secret, verify_password

TOKEN_LIFETIME = timedelta(days=30)
# Verified against when the email is unknown, so both paths cost one scrypt.
_DUMMY_HASH = (
    "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
)


async def issue_token(
    session: AsyncSession, settings: Settings, email: str, password: str
) -> tuple[str, datetime] | None:
    """A new bearer token for valid credentials, or None."""
    user = await session.scalar(
        sa.select(User).where(sa.func.lower(User.email) == email.strip().lower())
    )
    stored = user.password_hash if user is not None and user.is_active else _DUMMY_HASH
    # scrypt is CPU-heavy by design: keep it off the event loop.
    valid = await asyncio.to_thread(verify_password, password, stored)
    if user is None or not user.is_active or not valid:
        return None
    token = new_secret(USER_TOKEN_PREFIX)
    expires_at = datetime.now(UTC) + TOKEN_LIFETIME
    session.add(
        UserToken(
            user_id=user.user_id,
            token_hash=hash_secret(token, settings.secret_key),
            expires_at=expires_at,
        )
    )
    await session.commit()
    return token, expires_at

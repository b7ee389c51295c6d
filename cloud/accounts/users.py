"""Orgs, users and their tokens: one service for the users API and the account commands."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.core.errors import ApiError
from cloud.core.security import hash_password, in_password_pool, verify_password
from cloud.models import Org, User, UserRole, UserToken

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
ONE_TIME_PASSWORD_BYTES = 18  # 24 url-safe characters
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def check_password(password: str) -> str:
    """The password when long enough to keep; 422 saying why otherwise."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ApiError(422, f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ApiError(422, f"password must have at most {MAX_PASSWORD_LENGTH} characters")
    return password


def normal_email(email: str) -> str:
    email = email.strip().lower()
    if len(email) > 320 or not _EMAIL.fullmatch(email):
        raise ApiError(422, f"invalid email {email!r}")
    return email


async def create_org(session: AsyncSession, name: str) -> Org:
    name = name.strip()
    if not name or len(name) > 200:
        raise ApiError(422, "org name must have 1 to 200 characters")
    org = Org(name=name)
    session.add(org)
    try:
        await session.flush()
    except IntegrityError as exc:
        await session.rollback()
        raise ApiError(409, f"org {name!r} already exists") from exc
    return org


async def find_org(session: AsyncSession, name_or_id: str) -> Org:
    """The org with this id or exact name; 404 otherwise."""
    org: Org | None = None
    try:
        org = await session.get(Org, uuid.UUID(name_or_id))
    except ValueError:
        pass
    if org is None:
        org = await session.scalar(sa.select(Org).where(Org.name == name_or_id.strip()))
    if org is None:
        raise ApiError(404, f"org {name_or_id!r} not found")
    return org


async def create_user(
    session: AsyncSession, org_id: uuid.UUID, email: str, role: UserRole, password: str | None
) -> tuple[User, str | None]:
    """A new active user; without `password` a one-time one is made and returned (once)."""
    generated = None
    if password is None:
        generated = password = secrets.token_urlsafe(ONE_TIME_PASSWORD_BYTES)
    check_password(password)
    email = normal_email(email)
    hashed = await in_password_pool(hash_password, password)  # scrypt: off the event loop
    user = User(org_id=org_id, email=email, role=role, password_hash=hashed)
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:
        await session.rollback()
        raise ApiError(409, f"user {email} already exists") from exc
    return user, generated


async def users_of(session: AsyncSession, org_id: uuid.UUID | None) -> Sequence[User]:
    """Users of one org (or of every org), by email."""
    query = sa.select(User).order_by(User.email)
    if org_id is not None:
        query = query.where(User.org_id == org_id)
    return list(await session.scalars(query))


async def org_user(session: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID) -> User:
    """A user of this org; another org's user is 404, as if absent."""
    user = await session.get(User, user_id)
    if user is None or user.org_id != org_id:
        raise ApiError(404, "user not found")
    return user


async def find_user(session: AsyncSession, email_or_id: str) -> User:
    user: User | None = None
    try:
        user = await session.get(User, uuid.UUID(email_or_id))
    except ValueError:
        pass
    if user is None:
        user = await session.scalar(
            sa.select(User).where(sa.func.lower(User.email) == email_or_id.strip().lower())
        )
    if user is None:
        raise ApiError(404, f"user {email_or_id!r} not found")
    return user


async def _refuse_losing_last_admin(session: AsyncSession, user: User) -> None:
    """An org keeps at least one active admin, else nobody could manage its users again."""
    if user.role != UserRole.ADMIN or not user.is_active:
        return
    others = await session.scalar(
        sa.select(sa.func.count())
        .select_from(User)
        .where(
            User.org_id == user.org_id,
            User.role == UserRole.ADMIN,
            User.is_active.is_(True),
            User.user_id != user.user_id,
        )
    )
    if not others:
        raise ApiError(409, f"{user.email} is the org's last active admin")


async def set_role(session: AsyncSession, user: User, role: UserRole) -> UserRole:
    """Change the user's role; returns the previous one."""
    previous = UserRole(user.role)
    if role != UserRole.ADMIN:
        await _refuse_losing_last_admin(session, user)
    user.role = role
    await session.flush()
    return previous


async def deactivate_user(session: AsyncSession, user: User) -> int:
    """The user can no longer sign in; every token of theirs is revoked (returns how many)."""
    await _refuse_losing_last_admin(session, user)
    user.is_active = False
    await session.flush()
    return await revoke_tokens(session, user.user_id)


async def revoke_tokens(
    session: AsyncSession, user_id: uuid.UUID, keep_token_hash: str | None = None
) -> int:
    """Revoke the user's open tokens (but `keep_token_hash`); returns how many."""
    query = sa.update(UserToken).where(UserToken.user_id == user_id, UserToken.revoked_at.is_(None))
    if keep_token_hash is not None:
        query = query.where(UserToken.token_hash != keep_token_hash)
    result = await session.execute(query.values(revoked_at=datetime.now(UTC)))
    return result.rowcount  # type: ignore[attr-defined]


async def change_password(
    session: AsyncSession, user: User, current: str, new: str, keep_token_hash: str
) -> int:
    """Set a new password after checking the current one; other sessions are signed out."""
    check_password(new)
    if not await in_password_pool(verify_password, current, user.password_hash):
        raise ApiError(403, "current password is wrong")
    user.password_hash = await in_password_pool(hash_password, new)
    await session.flush()
    return await revoke_tokens(session, user.user_id, keep_token_hash)


async def open_tokens(session: AsyncSession, user_id: uuid.UUID) -> Sequence[UserToken]:
    """The user's unrevoked, unexpired tokens, newest first."""
    return list(
        await session.scalars(
            sa.select(UserToken)
            .where(
                UserToken.user_id == user_id,
                UserToken.revoked_at.is_(None),
                UserToken.expires_at > datetime.now(UTC),
            )
            .order_by(UserToken.created_at.desc())
        )
    )


async def revoke_token(session: AsyncSession, user_id: uuid.UUID, token_id: uuid.UUID) -> None:
    """Revoke one of the user's own tokens; someone else's (or an unknown id) is 404."""
    token = await session.get(UserToken, token_id)
    if token is None or token.user_id != user_id:
        raise ApiError(404, "token not found")
    if token.revoked_at is None:
        token.revoked_at = datetime.now(UTC)
        await session.flush()

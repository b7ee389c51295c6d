"""Who is calling: user login and tokens, device keys; every check before any work is done."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.auth.actor import Actor
from cloud.auth.token_cache import TokenCache
from cloud.core.config import Settings
from cloud.core.errors import ApiError
from cloud.core.ids import DEVICE_ID
from cloud.core.security import (
    DEVICE_KEY_PREFIX,
    USER_TOKEN_PREFIX,
    hash_secret,
    in_password_pool,
    new_secret,
    verify_password,
)
from cloud.limits.counters import Limit, forgive, hit, too_many
from cloud.models import Device, DeviceStatus, User, UserRole, UserToken

AnyUser = TypeVar("AnyUser", User, Actor)

TOKEN_LIFETIME = timedelta(days=30)
# Each role may do everything the roles below it may: viewer reads, operator runs devices,
# triggers and alerts, admin also manages users, channels and keys.
ROLE_RANK = {UserRole.VIEWER: 0, UserRole.OPERATOR: 1, UserRole.ADMIN: 2}
_SECRET_BODY = re.compile(r"[A-Za-z0-9_-]{43}")
# Verified against when the email is unknown, so both paths cost one scrypt.
_DUMMY_HASH = (
    "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
)


def login_limits(settings: Settings) -> tuple[Limit, Limit]:
    window = settings.login_window_seconds
    return (
        Limit("login-account", settings.login_attempts_per_account, window),
        Limit("login-address", settings.login_attempts_per_address, window),
    )


async def issue_token(
    session: AsyncSession, settings: Settings, email: str, password: str, address: str = ""
) -> tuple[str, datetime] | None:
    """A new bearer token for valid credentials, or None; 429 past the attempt limits.

    Every attempt is counted (per account and per client address, in PostgreSQL) before any
    scrypt work; one that succeeds is taken back, so the limits count failures and attempts
    in flight.
    """
    account = email.strip().lower()
    per_account, per_address = login_limits(settings)
    waits = [await hit(session, per_account, account), await hit(session, per_address, address)]
    await session.commit()
    refused = [wait for wait in waits if wait is not None]
    if refused:
        raise too_many("too many login attempts; retry later", max(refused))
    row = (
        await session.execute(
            sa.select(User.user_id, User.password_hash, User.is_active).where(
                sa.func.lower(User.email) == account
            )
        )
    ).first()
    known = row is not None and row.is_active
    stored = row.password_hash if known else _DUMMY_HASH
    await session.rollback()  # no connection held while scrypt runs
    # scrypt is CPU-heavy by design: keep it off the event loop.
    valid = await in_password_pool(
        verify_password, password, stored, threads=settings.password_hash_threads
    )
    if not known or not valid:
        return None
    await forgive(session, per_account, account)
    await forgive(session, per_address, address)
    token = new_secret(USER_TOKEN_PREFIX)
    expires_at = datetime.now(UTC) + TOKEN_LIFETIME
    session.add(
        UserToken(
            user_id=row.user_id,
            token_hash=hash_secret(token, settings.secret_key),
            expires_at=expires_at,
        )
    )
    await session.commit()
    return token, expires_at


def checked_secret(presented: str | None, prefix: str) -> str:
    """The bearer secret when it has the shape of one we issue (prefix + 43 url-safe chars).

    Anything else is refused before a query (or, for uploads, before the body is read).
    """
    if not presented:
        raise ApiError(401, "missing bearer token", {"WWW-Authenticate": "Bearer"})
    if not presented.startswith(prefix) or not _SECRET_BODY.fullmatch(presented[len(prefix) :]):
        raise ApiError(401, "invalid bearer token", {"WWW-Authenticate": "Bearer"})
    return presented


async def authenticate_user(
    session: AsyncSession, settings: Settings, token: str | None, cache: TokenCache | None = None
) -> User:
    """The active user owning this unrevoked, unexpired token; 401 otherwise.

    With a `cache`, a token the database confirmed less than its TTL ago needs no query
    (see cloud/auth/token_cache.py for how revocation is honoured).
    """
    token_hash = _user_token_hash(settings, token)
    if cache is not None and (cached := cache.get(token_hash)) is not None:
        session.add(cached)  # persistent without a query: a route's changes to it are saved
        return cached
    return await _confirmed_user(session, token_hash, cache)


async def _confirmed_user(session: AsyncSession, token_hash: str, cache: TokenCache | None) -> User:
    """The token's user read from the database (and cached); 401 when there is none."""
    row = (
        await session.execute(
            sa.select(User, UserToken.expires_at)
            .join(UserToken, UserToken.user_id == User.user_id)
            .where(
                UserToken.token_hash == token_hash,
                UserToken.revoked_at.is_(None),
                UserToken.expires_at > datetime.now(UTC),
                User.is_active.is_(True),
            )
        )
    ).one_or_none()
    if row is None:
        raise ApiError(401, "invalid or expired token", {"WWW-Authenticate": "Bearer"})
    user, token_expires_at = row
    if cache is not None:
        cache.put(token_hash, user, token_expires_at)
    return user


async def authenticate_actor(
    session: AsyncSession, settings: Settings, token: str | None, cache: TokenCache
) -> Actor:
    """authenticate_user for read-only callers: a cache hit builds no ORM instance."""
    token_hash = _user_token_hash(settings, token)
    cached = cache.get_actor(token_hash)
    if cached is not None:
        return cached
    return Actor.of(await _confirmed_user(session, token_hash, cache))


def cached_actor(settings: Settings, token: str | None, cache: TokenCache) -> Actor | None:
    """The caller when the token cache knows its token (no database, no session needed);
    None when it must be looked up (authenticate_actor). 401 for a malformed token."""
    return cache.get_actor(_user_token_hash(settings, token))


def _user_token_hash(settings: Settings, token: str | None) -> str:
    """What a user token is stored and cached under; 401 for a malformed one."""
    return hash_secret(checked_secret(token, USER_TOKEN_PREFIX), settings.secret_key)


def device_key_hash(settings: Settings, device_id: str, key: str | None) -> str:
    """What the key presented for `device_id` is stored under: 404 for a malformed device id,
    401 for a malformed key (neither reaches the database)."""
    if not DEVICE_ID.match(device_id):
        raise ApiError(404, "device not found")
    return hash_secret(checked_secret(key, DEVICE_KEY_PREFIX), settings.secret_key)


async def authenticate_device(
    session: AsyncSession, settings: Settings, device_id: str, key: str | None
) -> Device:
    """The device whose key was presented, when the key is valid and the device may connect."""
    key_hash = device_key_hash(settings, device_id, key)
    device = await session.scalar(sa.select(Device).where(Device.key_hash == key_hash))
    # One answer whether the id is unknown or another device's: no existence oracle.
    if device is None or device.device_id != device_id:
        raise ApiError(401, "invalid device key", {"WWW-Authenticate": "Bearer"})
    if device.status != DeviceStatus.ACTIVE:
        raise ApiError(403, f"device is {device.status.value}")
    return device


def has_role(user: User | Actor, role: UserRole) -> bool:
    """True when the user's role is `role` or above it."""
    return ROLE_RANK[UserRole(user.role)] >= ROLE_RANK[role]


def require_role(user: AnyUser, role: UserRole) -> AnyUser:
    """The user, when allowed to act as `role`; 403 naming the role otherwise."""
    if not has_role(user, role):
        raise ApiError(403, f"this needs the {role.value} role")
    return user

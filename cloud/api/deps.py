"""Dependencies shared by every route: settings, sessions, the current user and device."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloud.config import Settings
from cloud.errors import ApiError
from cloud.models import Device, DeviceStatus, User, UserToken
from cloud.schemas import DEVICE_ID_PATTERN
from cloud.security import DEVICE_KEY_PREFIX, USER_TOKEN_PREFIX, hash_secret

_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)
_bearer = HTTPBearer(auto_error=False)
_SECRET_BODY = re.compile(r"[A-Za-z0-9_-]{43}")


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_session_factory(request: Request) -> async_sessionmaker[AsyncSession]:
    return request.app.state.session_factory


async def get_session(
    factory: Annotated[async_sessionmaker[AsyncSession], Depends(get_session_factory)],
) -> AsyncIterator[AsyncSession]:
    async with factory() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionFactoryDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_session_factory)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def bearer_secret(credentials: HTTPAuthorizationCredentials | None, prefix: str) -> str:
    if credentials is None or not credentials.credentials:
        raise ApiError(401, "missing bearer token", {"WWW-Authenticate": "Bearer"})
    secret = credentials.credentials
    # Every issued secret is prefix + 43 url-safe characters: anything else is refused before
    # a query (or, for uploads, before the body is read).
    if not _SECRET_BODY.fullmatch(secret.removeprefix(prefix)) or not secret.startswith(prefix):
        raise ApiError(401, "invalid bearer token", {"WWW-Authenticate": "Bearer"})
    return secret


def valid_device_id(device_id: Annotated[str, Path()]) -> str:
    """The path's device id, refused before it reaches SQL when malformed."""
    if not _DEVICE_ID.match(device_id):
        raise ApiError(404, "device not found")
    return device_id


async def get_current_user(
    credentials: Credentials, session: SessionDep, settings: SettingsDep
) -> User:
    token = bearer_secret(credentials, USER_TOKEN_PREFIX)
    token_hash = hash_secret(token, settings.secret_key)
    user = await session.scalar(
        sa.select(User)
        .join(UserToken, UserToken.user_id == User.user_id)
        .where(
            UserToken.token_hash == token_hash,
            UserToken.revoked_at.is_(None),
            UserToken.expires_at > datetime.now(UTC),
            User.is_active.is_(True),
        )
    )
    if user is None:
        raise ApiError(401, "invalid or expired token", {"WWW-Authenticate": "Bearer"})
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_org_device(
    device_id: Annotated[str, Depends(valid_device_id)], user: CurrentUser, session: SessionDep
) -> Device:
    """The path's device when it belongs to the user's org; 404 as if absent otherwise."""
    device = await session.get(Device, device_id)
    if device is None or device.org_id != user.org_id:
        raise ApiError(404, "device not found")
    return device


OrgDevice = Annotated[Device, Depends(get_org_device)]


async def authenticate_device(
    device_id: str,
    credentials: HTTPAuthorizationCredentials | None,
    session: AsyncSession,
    settings: Settings,
) -> Device:
    """The device whose key was presented, when the key is valid and the device may connect."""
    if not _DEVICE_ID.match(device_id):
        raise ApiError(404, "device not found")
    key = bearer_secret(credentials, DEVICE_KEY_PREFIX)
    device = await session.scalar(
        sa.select(Device).where(Device.key_hash == hash_secret(key, settings.secret_key))
    )
    if device is None:
        raise ApiError(401, "invalid device key", {"WWW-Authenticate": "Bearer"})
    if device.device_id != device_id:
        exists = await session.scalar(
            sa.select(Device.device_id).where(Device.device_id == device_id)
        )
        if exists is None:
            raise ApiError(404, "device not found")
        raise ApiError(403, "key does not belong to this device")
    if device.status != DeviceStatus.ACTIVE:
        raise ApiError(403, f"device is {device.status.value}")
    return device


async def get_current_device(
    device_id: Annotated[str, Path()],
    credentials: Credentials,
    session: SessionDep,
    settings: SettingsDep,
) -> Device:
    return await authenticate_device(device_id, credentials, session, settings)


CurrentDevice = Annotated[Device, Depends(get_current_device)]

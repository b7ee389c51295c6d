"""Dependencies shared by every route: settings, sessions, the hub, the store, who is calling."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloud.auth.service import authenticate_device, authenticate_user, require_role
from cloud.auth.token_cache import TokenCache
from cloud.captures.storage import SnapshotStore
from cloud.captures.upload_batches import UploadBatchers
from cloud.core.config import Settings
from cloud.core.errors import ApiError
from cloud.core.ids import DEVICE_ID
from cloud.hub.hub import CommandHub
from cloud.hub.stream_open import StreamOpener
from cloud.models import Device, User, UserRole
from cloud.triggers.batcher import ManualTriggerBatcher

_bearer = HTTPBearer(auto_error=False)


# Every dependency here is async: a plain `def` one costs a thread-pool hop per request.
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_session_factory(request: Request) -> async_sessionmaker[AsyncSession]:
    return request.app.state.session_factory


async def get_session(
    factory: Annotated[async_sessionmaker[AsyncSession], Depends(get_session_factory)],
) -> AsyncIterator[AsyncSession]:
    async with factory() as session:
        yield session


async def get_hub(request: Request) -> CommandHub:
    return request.app.state.hub


async def get_trigger_batcher(request: Request) -> ManualTriggerBatcher:
    return request.app.state.trigger_batcher


async def get_upload_batchers(request: Request) -> UploadBatchers:
    return request.app.state.upload_batchers


async def get_stream_opener(request: Request) -> StreamOpener:
    return request.app.state.stream_opener


async def get_snapshot_store(request: Request) -> SnapshotStore:
    return request.app.state.snapshot_store


async def get_token_cache(request: Request) -> TokenCache:
    return request.app.state.token_cache


SettingsDep = Annotated[Settings, Depends(get_settings)]
TokenCacheDep = Annotated[TokenCache, Depends(get_token_cache)]
HubDep = Annotated[CommandHub, Depends(get_hub)]
TriggerBatcherDep = Annotated[ManualTriggerBatcher, Depends(get_trigger_batcher)]
StreamOpenerDep = Annotated[StreamOpener, Depends(get_stream_opener)]
UploadBatchersDep = Annotated[UploadBatchers, Depends(get_upload_batchers)]
StoreDep = Annotated[SnapshotStore, Depends(get_snapshot_store)]
SessionFactoryDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_session_factory)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def bearer_token(credentials: Credentials) -> str | None:
    """The `Authorization: Bearer` value as sent, checked by the auth service."""
    return credentials.credentials if credentials is not None else None


BearerToken = Annotated[str | None, Depends(bearer_token)]


async def valid_device_id(device_id: Annotated[str, Path()]) -> str:
    """The path's device id, refused before it reaches SQL when malformed."""
    if not DEVICE_ID.match(device_id):
        raise ApiError(404, "device not found")
    return device_id


async def get_current_user(
    request: Request, token: BearerToken, session: SessionDep, settings: SettingsDep
) -> User:
    return await authenticate_user(session, settings, token, request.app.state.token_cache)


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_operator(user: CurrentUser) -> User:
    return require_role(user, UserRole.OPERATOR)


async def get_admin(user: CurrentUser) -> User:
    return require_role(user, UserRole.ADMIN)


# Any signed-in user may read (viewer); these may change things.
OperatorUser = Annotated[User, Depends(get_operator)]
AdminUser = Annotated[User, Depends(get_admin)]


async def get_org_device(
    device_id: Annotated[str, Depends(valid_device_id)], user: CurrentUser, session: SessionDep
) -> Device:
    """The path's device when it belongs to the user's org; 404 as if absent otherwise."""
    device = await session.get(Device, device_id)
    if device is None or device.org_id != user.org_id or device.deleted_at is not None:
        raise ApiError(404, "device not found")
    return device


OrgDevice = Annotated[Device, Depends(get_org_device)]


async def get_current_device(
    device_id: Annotated[str, Path()],
    token: BearerToken,
    session: SessionDep,
    settings: SettingsDep,
) -> Device:
    return await authenticate_device(session, settings, device_id, token)


CurrentDevice = Annotated[Device, Depends(get_current_device)]

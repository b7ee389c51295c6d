"""Device management for the user's own org."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from cloud.accounts.audit import AuditAction, record_audit
from cloud.api.deps import (
    AdminUser,
    CurrentUser,
    OperatorUser,
    OrgDevice,
    SessionDep,
    SettingsDep,
    StoreDep,
)
from cloud.api.schemas.devices import (
    DeviceCreate,
    DeviceList,
    DeviceOut,
    DeviceUpdate,
    DeviceWithKey,
)
from cloud.api.schemas.errors import responses
from cloud.api.schemas.users import ConnectionEventOut, ConnectionHistory
from cloud.devices.lifecycle import delete_device, delete_snapshots
from cloud.devices.service import (
    change_device,
    devices_of_org,
    register_device,
    rotate_device_key,
)
from cloud.hub.connection_log import connection_history

router = APIRouter(prefix="/v1/devices", tags=["devices"])


@router.post(
    "",
    response_model=DeviceWithKey,
    status_code=status.HTTP_201_CREATED,
    responses=responses(401, 403, 409, 413, 422, 503, s409="This device id is already registered"),
)
async def create_device(
    body: DeviceCreate, user: OperatorUser, session: SessionDep, settings: SettingsDep
) -> DeviceWithKey:
    """Register a device; its key is in this response only."""
    device, key = await register_device(
        session, settings, user, body.device_id, body.friendly_name, body.config
    )
    await session.commit()
    return DeviceWithKey(**DeviceOut.model_validate(device).model_dump(), device_key=key)


@router.get("", response_model=DeviceList, responses=responses(401, 503))
async def list_devices(user: CurrentUser, session: SessionDep) -> DeviceList:
    """Every device of the user's org."""
    devices = await devices_of_org(session, user)
    return DeviceList(devices=[DeviceOut.model_validate(d) for d in devices])


@router.get("/{device_id}", response_model=DeviceOut, responses=responses(401, 404, 422, 503))
async def get_device(device: OrgDevice) -> DeviceOut:
    """One device of the user's org."""
    return DeviceOut.model_validate(device)


@router.patch(
    "/{device_id}", response_model=DeviceOut, responses=responses(401, 403, 404, 413, 422, 503)
)
async def update_device(
    body: DeviceUpdate,
    user: OperatorUser,
    device: OrgDevice,
    session: SessionDep,
    settings: SettingsDep,
) -> DeviceOut:
    """Change name, status or desired config; a config change is pushed to the device."""
    before = (device.status, device.config_version)
    await change_device(
        session,
        settings,
        device,
        friendly_name=body.friendly_name,
        status=body.status,
        config=body.config,
    )
    if device.status != before[0]:
        details = {"from": before[0].value, "to": device.status.value}
        await record_audit(
            session, user, AuditAction.DEVICE_STATUS_CHANGED, device.device_id, details
        )
    if device.config_version != before[1]:
        details = {"version": device.config_version}
        await record_audit(session, user, AuditAction.CONFIG_PUSHED, device.device_id, details)
    await session.commit()
    return DeviceOut.model_validate(device)


@router.post(
    "/{device_id}/rotate-key",
    response_model=DeviceWithKey,
    responses=responses(401, 403, 404, 422, 503),
)
async def rotate_key(
    user: AdminUser, device: OrgDevice, session: SessionDep, settings: SettingsDep
) -> DeviceWithKey:
    """Issue a new device key; the old one stops working immediately."""
    key = await rotate_device_key(session, settings, device)
    await record_audit(session, user, AuditAction.KEY_ROTATED, device.device_id)
    await session.commit()
    return DeviceWithKey(**DeviceOut.model_validate(device).model_dump(), device_key=key)


@router.delete(
    "/{device_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404, 422, 503),
)
async def remove_device(
    user: OperatorUser,
    device: OrgDevice,
    session: SessionDep,
    settings: SettingsDep,
    store: StoreDep,
    delete_captures: bool = False,
) -> Response:
    """Delete a device: stream closed, key dead, open triggers failed; captures optional."""
    device_id = device.device_id
    keys = await delete_device(session, settings.secret_key, device, delete_captures)
    details = {"delete_captures": delete_captures, "captures_deleted": len(keys)}
    await record_audit(session, user, AuditAction.DEVICE_DELETED, device_id, details)
    await session.commit()
    await delete_snapshots(store, keys)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{device_id}/connection",
    response_model=ConnectionHistory,
    responses=responses(401, 404, 422, 503),
)
async def get_connection_history(
    device: OrgDevice,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ConnectionHistory:
    """The device's latest stream connects and disconnects (with reasons), newest first."""
    events = await connection_history(session, device.device_id, limit)
    return ConnectionHistory(
        device_id=device.device_id, events=[ConnectionEventOut.model_validate(e) for e in events]
    )

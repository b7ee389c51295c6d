"""Device management for the user's own org."""

from __future__ import annotations

from fastapi import APIRouter, status

from cloud.api.deps import CurrentUser, OrgDevice, SessionDep, SettingsDep
from cloud.api.schemas.devices import (
    DeviceCreate,
    DeviceList,
    DeviceOut,
    DeviceUpdate,
    DeviceWithKey,
)
from cloud.devices.service import (
    change_device,
    devices_of_org,
    register_device,
    rotate_device_key,
)

router = APIRouter(prefix="/v1/devices", tags=["devices"])


@router.post("", response_model=DeviceWithKey, status_code=status.HTTP_201_CREATED)
async def create_device(
    body: DeviceCreate, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> DeviceWithKey:
    """Register a device; its key is in this response only."""
    device, key = await register_device(
        session, settings, user, body.device_id, body.friendly_name, body.config
    )
    await session.commit()
    return DeviceWithKey(**DeviceOut.model_validate(device).model_dump(), device_key=key)


@router.get("", response_model=DeviceList)
async def list_devices(user: CurrentUser, session: SessionDep) -> DeviceList:
    """Every device of the user's org."""
    devices = await devices_of_org(session, user)
    return DeviceList(devices=[DeviceOut.model_validate(d) for d in devices])


@router.get("/{device_id}", response_model=DeviceOut)
async def get_device(device: OrgDevice) -> DeviceOut:
    """One device of the user's org."""
    return DeviceOut.model_validate(device)


@router.patch("/{device_id}", response_model=DeviceOut)
async def update_device(
    body: DeviceUpdate, device: OrgDevice, session: SessionDep, settings: SettingsDep
) -> DeviceOut:
    """Change name, status or desired config; a config change is pushed to the device."""
    await change_device(
        session,
        settings,
        device,
        friendly_name=body.friendly_name,
        status=body.status,
        config=body.config,
    )
    await session.commit()
    return DeviceOut.model_validate(device)


@router.post("/{device_id}/rotate-key", response_model=DeviceWithKey)
async def rotate_key(
    device: OrgDevice, session: SessionDep, settings: SettingsDep
) -> DeviceWithKey:
    """Issue a new device key; the old one stops working immediately."""
    key = await rotate_device_key(session, settings, device)
    await session.commit()
    return DeviceWithKey(**DeviceOut.model_validate(device).model_dump(), device_key=key)

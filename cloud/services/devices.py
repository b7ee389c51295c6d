"""Device registry: register, update (config versioning), rotate keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.config import Settings
from cloud.device_config import DeviceConfig
from cloud.errors import ApiError
from cloud.models import Device, User
from cloud.schedule import check_schedule_limits, first_slot, reschedule
from cloud.security import DEVICE_KEY_PREFIX, hash_secret, new_secret


def config_document(config: DeviceConfig) -> dict[str, Any]:
    """The stored form of a validated config: only the fields that were set."""
    return config.model_dump(mode="json", exclude_none=True)


def _new_key(settings: Settings) -> tuple[str, str, str]:
    key = new_secret(DEVICE_KEY_PREFIX)
    return key, hash_secret(key, settings.secret_key), key[:12]


async def register_device(
    session: AsyncSession,
    settings: Settings,
    user: User,
    device_id: str,
    friendly_name: str | None,
    config: DeviceConfig,
) -> tuple[Device, str]:
    """A new device in the user's org and its key (returned once, stored hashed)."""
    check_schedule_limits(config, settings.min_interval_seconds)
    key, key_hash, key_prefix = _new_key(settings)
    now = datetime.now(UTC)
    device = Device(
        device_id=device_id,
        org_id=user.org_id,
        friendly_name=friendly_name,
        config=config_document(config),
        config_version=1,
        activated_by_user_id=user.user_id,
        activated_at=now,
        key_hash=key_hash,
        key_prefix=key_prefix,
        next_trigger_at=first_slot(config_document(config), now),
    )
    session.add(device)
    try:
        await session.flush()
    except IntegrityError as exc:
        await session.rollback()
        raise ApiError(409, f"device {device_id} already exists") from exc
    return device, key


async def rotate_device_key(session: AsyncSession, settings: Settings, device: Device) -> str:
    """Replace the device's key; the old key stops working at once."""
    key, key_hash, key_prefix = _new_key(settings)
    device.key_hash = key_hash
    device.key_prefix = key_prefix
    device.key_rotated_at = datetime.now(UTC)
    await session.flush()
    return key


def apply_config_change(device: Device, config: DeviceConfig) -> bool:
    """Set the desired config; bump its version when it changed. True when it changed."""
    document = config_document(config)
    if document == device.config:
        return False
    previous, device.config = device.config, document
    device.config_version = device.config_version + 1
    reschedule(device, previous)  # the scheduler sees the new schedule on its next tick
    return True


async def devices_of_org(session: AsyncSession, user: User) -> list[Device]:
    result = await session.scalars(
        sa.select(Device).where(Device.org_id == user.org_id).order_by(Device.device_id)
    )
    return list(result)

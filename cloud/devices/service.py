"""Device registry: register, update (config versioning), rotate keys."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.core.config import Settings
from cloud.core.errors import ApiError
from cloud.core.security import DEVICE_KEY_PREFIX, hash_secret, new_secret
from cloud.devices.config_document import DeviceConfig
from cloud.hub import close_reasons
from cloud.hub.connection_log import notify_barred
from cloud.hub.envelopes import config_envelope, notify_command
from cloud.models import Device, DeviceStatus, User
from cloud.scheduling.slots import first_slot, schedule_problem


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
    await check_schedule_off_loop(config, settings.min_interval_seconds)
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
        # Ids are global: say it is taken, never whose it is (it may be another org's).
        raise ApiError(409, "this device id is already registered") from exc
    return device, key


async def rotate_device_key(session: AsyncSession, settings: Settings, device: Device) -> str:
    """Replace the device's key; the old key stops working at once, and the stream it opened
    ends when the caller commits (the heartbeat's key check is the backstop)."""
    key, key_hash, key_prefix = _new_key(settings)
    device.key_hash = key_hash
    device.key_prefix = key_prefix
    device.key_rotated_at = datetime.now(UTC)
    await session.flush()
    await notify_barred(session, device.device_id, close_reasons.KEY_ROTATED)
    return key


async def check_schedule_off_loop(config: DeviceConfig, min_interval_seconds: int) -> None:
    """`check_schedule_limits` in a thread.

    Finding whether a schedule ever fires walks cron steps and active-hours windows (bounded
    by the document's caps, yet up to tens of milliseconds): the event loop keeps serving
    streams meanwhile.
    """
    await asyncio.to_thread(check_schedule_limits, config, min_interval_seconds)


def check_schedule_limits(config: DeviceConfig, min_interval_seconds: int) -> None:
    """Refuse (422) a schedule that the runtime settings forbid."""
    problem = schedule_problem(config.trigger, min_interval_seconds)
    if problem is not None:
        raise ApiError(422, problem)


def reschedule(device: Device, previous_config: dict[str, Any] | None) -> None:
    """Recompute the device's next slot if its trigger section changed (seen on the next tick)."""
    previous = (previous_config or {}).get("trigger")
    if device.next_trigger_at is None or (device.config or {}).get("trigger") != previous:
        device.next_trigger_at = first_slot(device.config)


async def change_device(
    session: AsyncSession,
    settings: Settings,
    device: Device,
    *,
    friendly_name: str | None,
    status: DeviceStatus | None,
    config: DeviceConfig | None,
) -> None:
    """Change name, status or desired config; a new config is announced to its stream, and a
    device no longer active has its stream ended when the caller commits."""
    if config is not None:
        await check_schedule_off_loop(config, settings.min_interval_seconds)
    if friendly_name is not None:
        device.friendly_name = friendly_name
    if status is not None and status != device.status:
        device.status = status
        if status is not DeviceStatus.ACTIVE:
            await notify_barred(session, device.device_id, close_reasons.device_not_active(status))
    if config is not None and apply_config_change(device, config):
        await session.flush()
        await notify_command(session, device.device_id, config_envelope(device))


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
        sa.select(Device)
        .where(Device.org_id == user.org_id, Device.deleted_at.is_(None))
        .order_by(Device.device_id)
    )
    return list(result)

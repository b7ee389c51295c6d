"""Device commands (ping, diagnostics, restart): creation with its NOTIFY, results, lookups.

They follow the trigger lifecycle: pending -> sent -> executed | failed | expired. The hub
delivers them like capture triggers (backlog on connect, NOTIFY live, `sent` after the write)
and the reaper expires them; the device answers each with a result.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.core.config import Settings
from cloud.core.errors import ApiError
from cloud.core.ids import new_device_command_id
from cloud.hub.envelopes import device_command_envelope, notify_command
from cloud.hub.presence import is_connected
from cloud.models import (
    OPEN_TRIGGER_STATUSES,
    Device,
    DeviceCommand,
    DeviceCommandType,
    TriggerStatus,
    User,
)


def json_size(document: Any) -> int:
    """Bytes of `document` as compact JSON: what the size limits count."""
    return len(json.dumps(document, separators=(",", ":")).encode())


async def request_command(
    session: AsyncSession,
    settings: Settings,
    device: Device,
    user: User,
    command_type: DeviceCommandType,
    ttl_seconds: int | None,
) -> tuple[DeviceCommand, bool]:
    """Store a pending command and announce it (caller commits); also: is the device online.

    The open-command cap is a soft one (no lock): two racing requests may both pass it, which
    costs one command more, not a pile-up.
    """
    open_count, first_expiry, online = (
        await session.execute(
            sa.select(
                sa.select(sa.func.count()).where(_open_of(device.device_id)).scalar_subquery(),
                sa.select(sa.func.min(DeviceCommand.expires_at))
                .where(_open_of(device.device_id))
                .scalar_subquery(),
                is_connected(settings.keepalive_seconds),
            ).where(Device.device_id == device.device_id)
        )
    ).one()
    if open_count >= settings.max_open_device_commands:
        wait = max(1, math.ceil((first_expiry - datetime.now(UTC)).total_seconds()))
        raise ApiError(
            429,
            f"device has {open_count} open commands (limit {settings.max_open_device_commands})",
            {"Retry-After": str(wait)},
        )
    now = datetime.now(UTC)
    ttl = timedelta(seconds=ttl_seconds or settings.device_command_ttl_seconds)
    command = DeviceCommand(
        command_id=new_device_command_id(),
        device_id=device.device_id,
        command_type=command_type,
        status=TriggerStatus.PENDING,
        created_at=now,
        expires_at=now + ttl,
        requested_by_user_id=user.user_id,
    )
    session.add(command)
    await session.flush()
    await notify_command(session, device.device_id, device_command_envelope(command))
    return command, bool(online)


def _open_of(device_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(
        DeviceCommand.device_id == device_id,
        DeviceCommand.status.in_(OPEN_TRIGGER_STATUSES),
        DeviceCommand.expires_at > sa.func.now(),
    )


async def org_command(session: AsyncSession, user: User, command_id: str) -> DeviceCommand:
    """One command of a device of the user's org; 404 otherwise."""
    command = await session.scalar(
        sa.select(DeviceCommand)
        .join(Device, Device.device_id == DeviceCommand.device_id)
        .where(DeviceCommand.command_id == command_id, Device.org_id == user.org_id)
    )
    if command is None:
        raise ApiError(404, "command not found")
    return command


async def record_result(
    session: AsyncSession,
    device_id: str,
    command_id: str,
    result: dict[str, Any] | None,
    error: str | None,
) -> DeviceCommand:
    """Finish an open command with the device's answer: executed (result) or failed (error).

    A ping's result gains `round_trip_ms`: from the write to the stream (or creation, when
    the batched sent mark is not stored yet) to this answer, both on the cloud's clock, so
    a device clock that is off does not matter. 409 when the command is already terminal.
    """
    command = await session.get(DeviceCommand, command_id)
    if command is None or command.device_id != device_id:
        raise ApiError(404, "command not found")
    if command.status not in OPEN_TRIGGER_STATUSES:
        raise ApiError(409, f"command is already {command.status.value}")
    now = datetime.now(UTC)
    if error is None and command.command_type is DeviceCommandType.PING:
        started = command.sent_at or command.created_at
        round_trip_ms = round((now - started).total_seconds() * 1000.0, 1)
        result = {**(result or {}), "round_trip_ms": round_trip_ms}
    finished = await session.scalar(
        sa.update(DeviceCommand)
        .where(
            DeviceCommand.command_id == command_id,
            DeviceCommand.status.in_(OPEN_TRIGGER_STATUSES),
        )
        .values(
            status=TriggerStatus.FAILED if error is not None else TriggerStatus.EXECUTED,
            result=result if error is None else None,
            error=error,
            finished_at=now,
        )
        .returning(DeviceCommand.command_id)
    )
    if finished is None:  # expired or answered between the read and the update
        await session.refresh(command)
        raise ApiError(409, f"command is already {command.status.value}")
    await session.refresh(command)
    return command

"""Command envelopes and their durable notification (NOTIFY in the storing transaction)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.core.ids import config_command_id
from cloud.models import Device, DeviceCommand, Trigger

DELIVERED_CHANNEL = "visant_delivered"  # shared: deliveries whose waiter is unknown
COMMANDS_CHANNEL = "visant_commands"  # shared: every instance listens (presence unknown)
INSTANCE_CHANNEL_PREFIX = "visant_commands_"  # + instance id: only that instance listens
NOTIFY_PAYLOAD_LIMIT = 7900  # bytes; PostgreSQL refuses NOTIFY payloads of 8000 or more


class CommandType(StrEnum):
    CAPTURE = "capture"
    CONFIG = "config"
    # Device commands (cloud/commands): the trigger lifecycle, answered with a result.
    PING = "ping"
    DIAGNOSTICS = "diagnostics"
    RESTART = "restart"


DEVICE_COMMAND_TYPES = frozenset(
    {CommandType.PING.value, CommandType.DIAGNOSTICS.value, CommandType.RESTART.value}
)


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


def capture_envelope(trigger: Trigger) -> dict[str, Any]:
    return capture_envelope_of(
        trigger.trigger_id,
        trigger.trigger_type.value,
        trigger.trigger_label,
        trigger.created_at or trigger.scheduled_at,
        trigger.expires_at,
    )


def capture_envelope_of(
    trigger_id: str,
    trigger_type: str,
    label: str | None,
    issued_at: datetime | None,
    expires_at: datetime | None,
) -> dict[str, Any]:
    """The capture command of a trigger known by its values (no ORM instance built)."""
    return {
        "command_id": trigger_id,
        "type": CommandType.CAPTURE.value,
        "issued_at": _iso(issued_at),
        "expires_at": _iso(expires_at),
        "payload": {
            "trigger_id": trigger_id,
            "trigger_type": trigger_type,
            "trigger_label": label,
        },
    }


def device_command_envelope(command: DeviceCommand) -> dict[str, Any]:
    return {
        "command_id": command.command_id,
        "type": command.command_type.value,
        "issued_at": _iso(command.created_at),
        "expires_at": _iso(command.expires_at),
        "payload": {},
    }


def config_envelope(device: Device, issued_at: datetime | None = None) -> dict[str, Any]:
    return {
        "command_id": config_command_id(device.config_version),
        "type": CommandType.CONFIG.value,
        "issued_at": _iso(issued_at or datetime.now(UTC)),
        "expires_at": None,
        "payload": {"version": device.config_version, "config": device.config},
    }


def command_message(device_id: str, envelope: dict[str, Any], reply_to: str | None = None) -> str:
    """The COMMANDS_CHANNEL payload announcing `envelope` to the instance holding the device;
    `reply_to`: the instance waiting to hear of its delivery (delivered_channel).

    An envelope too large for NOTIFY is announced without its body; listeners then re-read
    the device's pending commands from the database.
    """
    message: dict[str, Any] = {"device_id": device_id, "envelope": envelope}
    if reply_to is not None:
        message["reply_to"] = reply_to
    text = json.dumps(message, separators=(",", ":"))
    if len(text.encode()) > NOTIFY_PAYLOAD_LIMIT:
        text = json.dumps({**message, "envelope": None}, separators=(",", ":"))
    return text


def parse_command_message(payload: str) -> tuple[str, dict[str, Any] | None, str | None]:
    """(device_id, envelope, reply_to) of a COMMANDS_CHANNEL payload; envelope None: re-read
    the backlog."""
    message = json.loads(payload)
    return message["device_id"], message.get("envelope"), message.get("reply_to")


def delivered_channel(instance_id: str | None) -> str:
    """Where a delivery is confirmed: the waiting instance's own channel when known (one
    listener parses it, not all N), else the shared one."""
    return f"{DELIVERED_CHANNEL}_{instance_id}" if instance_id else DELIVERED_CHANNEL


def command_channel(instance_id: str | None) -> str:
    """The channel announcing a command to the instance holding the device's stream.

    With one channel per instance a command is parsed by one listener, not by all N; when the
    holder is unknown (no live presence row) the shared channel reaches every instance.
    """
    return f"{INSTANCE_CHANNEL_PREFIX}{instance_id}" if instance_id else COMMANDS_CHANNEL


def notify_command_statement(
    device_id: str, envelope: dict[str, Any], instance_id: str | None = None
) -> sa.Select:
    """`SELECT pg_notify(...)`: delivered by PostgreSQL only if the transaction commits."""
    message = command_message(device_id, envelope)
    return sa.select(sa.func.pg_notify(command_channel(instance_id), message))


async def notify_command(
    session: AsyncSession,
    device_id: str,
    envelope: dict[str, Any],
    instance_id: str | None = None,
) -> None:
    """Queue a NOTIFY, in the caller's transaction, for `instance_id` or else every instance."""
    await session.execute(notify_command_statement(device_id, envelope, instance_id))

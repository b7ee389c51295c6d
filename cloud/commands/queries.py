"""SQL of device commands that the hub and the reaper share: backlog, sent marks, expiry."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.models import OPEN_TRIGGER_STATUSES, DeviceCommand, TriggerStatus

_TEXT_ARRAY = ARRAY(sa.Text)
_TIME_ARRAY = ARRAY(sa.DateTime(timezone=True))
COMMAND_ID_PREFIX = "cmd_"


def is_device_command_id(command_id: str) -> bool:
    return command_id.startswith(COMMAND_ID_PREFIX)


async def open_commands_for(
    session: AsyncSession, device_ids: Sequence[str]
) -> list[DeviceCommand]:
    """Open, unexpired device commands of these devices, oldest first."""
    result = await session.scalars(
        sa.select(DeviceCommand)
        .where(
            DeviceCommand.device_id == sa.any_(sa.bindparam(None, list(device_ids), _TEXT_ARRAY)),
            DeviceCommand.status.in_(OPEN_TRIGGER_STATUSES),
            DeviceCommand.expires_at > sa.func.now(),
        )
        .order_by(DeviceCommand.created_at, DeviceCommand.command_id)
    )
    return list(result)


async def mark_commands_sent(
    session: AsyncSession, written: Sequence[tuple[str, datetime]]
) -> None:
    """Record when each command was written to a stream; a finished command stays finished."""
    if not written:
        return
    await session.execute(
        sa.text(
            "UPDATE device_commands AS c SET status = :sent, sent_at = w.at "
            "FROM unnest(:ids, :moments) AS w(id, at) "
            "WHERE c.command_id = w.id AND c.status = :pending"
        ).bindparams(
            sa.bindparam("ids", type_=_TEXT_ARRAY),
            sa.bindparam("moments", type_=_TIME_ARRAY),
        ),
        {
            "ids": [command_id for command_id, _ in written],
            "moments": [moment for _, moment in written],
            "sent": TriggerStatus.SENT.value,
            "pending": TriggerStatus.PENDING.value,
        },
    )


async def expire_overdue_commands(session: AsyncSession) -> int:
    """Close every open device command past its expiry; idempotent across instances."""
    result = await session.execute(
        sa.update(DeviceCommand)
        .where(
            DeviceCommand.status.in_(OPEN_TRIGGER_STATUSES),
            DeviceCommand.expires_at < sa.func.now(),
        )
        .values(status=TriggerStatus.EXPIRED, finished_at=sa.func.now())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount  # type: ignore[attr-defined]

"""Delivery bookkeeping: the backlog a stream replays on connect, sent marks, config acks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.commands.queries import is_device_command_id, mark_commands_sent, open_commands_for
from cloud.events.notify import EVENTS_CHANNEL, trigger_event_sql
from cloud.hub.envelopes import (
    capture_envelope,
    config_envelope,
    delivered_channel,
    device_command_envelope,
)
from cloud.models import (
    OPEN_TRIGGER_STATUSES,
    Device,
    Trigger,
    TriggerStatus,
)

DELIVERED_IDS_PER_NOTIFY = 150  # 150 ids x ~37 bytes stays under the 8000-byte NOTIFY limit

_TEXT_ARRAY = ARRAY(sa.Text)
_TIME_ARRAY = ARRAY(sa.DateTime(timezone=True))


_ENVELOPE_COLUMNS = (
    Trigger.trigger_id,
    Trigger.trigger_type,
    Trigger.trigger_label,
    Trigger.created_at,
    Trigger.scheduled_at,
    Trigger.expires_at,
)


def _ids(values: Sequence[str]) -> sa.BindParameter[list[str]]:
    return sa.bindparam(None, list(values), type_=_TEXT_ARRAY)


def needs_config(device: Device) -> bool:
    """True when the device has not acknowledged its desired config version."""
    reported = device.reported_config_version
    return reported is None or reported < device.config_version


async def backlog_envelopes(
    session: AsyncSession, devices: Sequence[Device]
) -> dict[str, list[dict[str, Any]]]:
    """What each (re)connecting device is owed, in order: unacked config, then open triggers,
    then open device commands. Two queries whatever the number of devices (a reconnect storm
    opens them in batches)."""
    owed: dict[str, list[dict[str, Any]]] = {
        device.device_id: [config_envelope(device)] if needs_config(device) else []
        for device in devices
    }
    ids = list(owed)
    # Columns, not ORM objects: the open path runs 10,000 times in a reconnect storm.
    rows = await session.execute(
        sa.select(Trigger.device_id, *_ENVELOPE_COLUMNS)
        .where(
            Trigger.device_id == sa.any_(_ids(ids)),
            Trigger.status.in_(OPEN_TRIGGER_STATUSES),
            Trigger.expires_at > sa.func.now(),
        )
        .order_by(Trigger.created_at, Trigger.trigger_id)
    )
    for row in rows:
        owed[row.device_id].append(capture_envelope(row))  # type: ignore[arg-type]
    for command in await open_commands_for(session, ids):
        owed[command.device_id].append(device_command_envelope(command))
    return owed


async def open_triggers_for(session: AsyncSession, device_ids: Sequence[str]) -> list[Trigger]:
    """Open, unexpired triggers of these devices, oldest first."""
    result = await session.scalars(
        sa.select(Trigger)
        .where(
            Trigger.device_id == sa.any_(_ids(device_ids)),
            Trigger.status.in_(OPEN_TRIGGER_STATUSES),
            Trigger.expires_at > sa.func.now(),
        )
        .order_by(Trigger.created_at, Trigger.trigger_id)
    )
    return list(result)


async def devices_owed_config(session: AsyncSession, device_ids: Sequence[str]) -> list[Device]:
    result = await session.scalars(
        sa.select(Device).where(
            Device.device_id == sa.any_(_ids(device_ids)),
            sa.or_(
                Device.reported_config_version.is_(None),
                Device.reported_config_version < Device.config_version,
            ),
        )
    )
    return list(result)


# The rows marked are announced to the console in the same statement; `also` adds to its
# select list (evaluated once).
def _mark_sent_sql(
    ids: str, moments: str, sent: str, pending: str, events: str, also: str = ""
) -> str:
    return (
        f"WITH marked AS (UPDATE scheduled_triggers AS t SET status = {sent}, sent_at = w.at "
        f"FROM unnest({ids}, {moments}) AS w(id, at) "
        f"WHERE t.trigger_id = w.id AND t.status = {pending} "
        "RETURNING t.trigger_id, t.device_id) SELECT count("
        + trigger_event_sql("d.org_id", "marked.device_id", "marked.trigger_id", "'sent'", events)
        + f"){also} FROM marked JOIN devices AS d ON d.device_id = marked.device_id"
    )


_MARK_SENT = sa.text(_mark_sent_sql(":ids", ":moments", ":sent", ":pending", ":events"))
# With the marks, the confirmations to the waiting instances: NOTIFY channel $4[i], $5[i].
_MARK_SENT_ON_DRIVER = _mark_sent_sql(
    "$1::text[]",
    "$2::timestamptz[]",
    f"'{TriggerStatus.SENT.value}'",
    f"'{TriggerStatus.PENDING.value}'",
    "$3::text",
    ", (SELECT count(pg_notify(c.channel, c.ids)) "
    "FROM unnest($4::text[], $5::text[]) AS c(channel, ids))",
)


async def mark_triggers_sent(
    driver: Any,
    written: Sequence[tuple[str, datetime]],
    delivered: Sequence[tuple[str, str | None]] = (),
) -> None:
    """mark_sent for triggers only, and notify_delivered for `delivered`, in one statement on
    `driver` (an asyncpg connection), which commits alone: 125-149 us of CPU per window
    against 229-256 through SQLAlchemy (one trigger a window, 3,000 windows, no
    confirmations; docs/performance.md)."""
    confirmations = _confirmations(delivered)
    await driver.fetchval(
        _MARK_SENT_ON_DRIVER,
        [trigger_id for trigger_id, _ in written],
        [moment for _, moment in written],
        EVENTS_CHANNEL,
        [channel for channel, _ in confirmations],
        [ids for _, ids in confirmations],
    )


async def mark_sent(session: AsyncSession, written: Sequence[tuple[str, datetime]]) -> None:
    """Record when each trigger (or device command) was written to a stream; terminal stays."""
    commands = [row for row in written if is_device_command_id(row[0])]
    if commands:
        await mark_commands_sent(session, commands)
        written = [row for row in written if not is_device_command_id(row[0])]
    if not written:
        return
    ids = [trigger_id for trigger_id, _ in written]
    moments = [moment for _, moment in written]
    await session.execute(
        _MARK_SENT.bindparams(
            sa.bindparam("ids", type_=_TEXT_ARRAY),
            sa.bindparam("moments", type_=_TIME_ARRAY),
        ),
        {
            "ids": ids,
            "moments": moments,
            "sent": TriggerStatus.SENT.value,
            "pending": TriggerStatus.PENDING.value,
            "events": EVENTS_CHANNEL,
        },
    )


async def notify_delivered(
    session: AsyncSession, delivered: Sequence[tuple[str, str | None]]
) -> None:
    """Tell the instances waiting on these (trigger id, waiting instance) that they reached a
    stream: each on its own channel, those of an unknown waiter on the shared one."""
    for channel, ids in _confirmations(delivered):
        await session.execute(sa.select(sa.func.pg_notify(channel, ids)))


def _confirmations(delivered: Sequence[tuple[str, str | None]]) -> list[tuple[str, str]]:
    """(channel, comma-separated trigger ids) NOTIFYs telling the waiters of `delivered`."""
    by_channel: dict[str, list[str]] = {}
    for trigger_id, reply_to in delivered:
        by_channel.setdefault(delivered_channel(reply_to), []).append(trigger_id)
    return [
        (channel, ",".join(trigger_ids[start : start + DELIVERED_IDS_PER_NOTIFY]))
        for channel, trigger_ids in by_channel.items()
        for start in range(0, len(trigger_ids), DELIVERED_IDS_PER_NOTIFY)
    ]


async def record_config_ack(
    session: AsyncSession, device: Device, version: int, config: dict[str, Any]
) -> None:
    """Store the config the device reports it applied; an older report never wins."""
    await session.execute(
        sa.update(Device)
        .where(
            Device.device_id == device.device_id,
            sa.or_(
                Device.reported_config_version.is_(None),
                Device.reported_config_version <= version,
            ),
        )
        .values(
            reported_config=config,
            reported_config_version=version,
            reported_config_at=sa.func.now(),
        )
    )

"""The scheduler benchmark's floor: the same trigger INSERTs and NOTIFYs by plain psycopg2.

No scheduling logic, no claim, no ORM: per batch one `execute_values` INSERT of the rows a
tick would store (same table, same columns, same ON CONFLICT) and one `execute_values`
`pg_notify` of payloads shaped like the scheduler's, committed together. What the scheduler
costs above this (claiming due devices, planning slots, advancing schedules) is ours.
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime, timedelta

import psycopg2
from psycopg2.extras import execute_values

from cloud.core.database_url import libpq_dsn
from cloud.hub.envelopes import COMMANDS_CHANNEL

_INSERT = """
    INSERT INTO scheduled_triggers
        (trigger_id, device_id, trigger_type, trigger_label, status,
         scheduled_at, created_at, expires_at)
    VALUES %s
    ON CONFLICT (device_id, scheduled_at) WHERE trigger_type = 'scheduled' DO NOTHING
"""
_NOTIFY = "SELECT pg_notify(c, m) FROM (VALUES %s) AS v(c, m)"


def floor_triggers_per_s(url: str, device_ids: list[str], batch: int) -> float:
    """Triggers/s storing and announcing one trigger for each of `device_ids`."""
    connection = psycopg2.connect(libpq_dsn(url))
    try:
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE scheduled_triggers CASCADE")
        connection.commit()
        now = datetime.now(UTC)
        slot = now.replace(microsecond=0) - timedelta(seconds=1)
        expires = now + timedelta(seconds=60)
        began = time.perf_counter()
        for start in range(0, len(device_ids), batch):
            rows, messages = [], []
            for device_id in device_ids[start : start + batch]:
                trigger_id = f"trg_{secrets.token_hex(12)}"
                rows.append(
                    (trigger_id, device_id, "scheduled", "scheduled_interval", "pending")
                    + (slot, now, expires)
                )
                envelope = {
                    "command_id": trigger_id,
                    "type": "capture",
                    "issued_at": now.isoformat(),
                    "expires_at": expires.isoformat(),
                    "payload": {
                        "trigger_id": trigger_id,
                        "trigger_type": "scheduled",
                        "trigger_label": "scheduled_interval",
                    },
                }
                message = json.dumps({"device_id": device_id, "envelope": envelope})
                messages.append((COMMANDS_CHANNEL, message))
            with connection.cursor() as cursor:
                execute_values(cursor, _INSERT, rows, page_size=batch)
                execute_values(cursor, _NOTIFY, messages, page_size=batch)
            connection.commit()
        return len(device_ids) / (time.perf_counter() - began)
    finally:
        connection.close()

"""TriggerScheduler against a real PostgreSQL: claiming, skipping, books that balance."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cloud.config import Settings
from cloud.db import create_engine_for, create_session_factory
from cloud.models import (
    Device,
    DeviceConnection,
    ServerInstance,
    Trigger,
    TriggerStatus,
    TriggerType,
)
from cloud.scheduler import TriggerScheduler
from tests.factories import Factory

T0 = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
EVERY_SECOND = {"trigger": {"enabled": True, "interval_seconds": 1}}
SchedulerMaker = Callable[..., TriggerScheduler]


@pytest.fixture
async def make_scheduler(
    database_url: str, settings: Settings, db: sessionmaker[Session]
) -> AsyncIterator[SchedulerMaker]:
    """TriggerSchedulers with their own engines; stopped (in time) and disposed at teardown."""
    made: list[tuple[TriggerScheduler, Any]] = []

    def make(**overrides: Any) -> TriggerScheduler:
        scheduler_settings = settings.model_copy(update={"keepalive_seconds": 60.0, **overrides})
        engine = create_engine_for(database_url, scheduler_settings)
        scheduler = TriggerScheduler(create_session_factory(engine), scheduler_settings)
        made.append((scheduler, engine))
        return scheduler

    yield make
    for scheduler, engine in made:
        began = time.monotonic()
        await scheduler.stop()
        assert time.monotonic() - began < 6.0, "scheduler took too long to stop"
        await engine.dispose()


def _connect(db: sessionmaker[Session], *device_ids: str) -> None:
    """Mark devices as holding a live stream (fresh instance heartbeat + connection rows)."""
    instance_id = f"test-{uuid.uuid4().hex[:8]}"
    with db() as session:
        session.add(ServerInstance(instance_id=instance_id, hostname=socket.gethostname(), pid=1))
        session.flush()
        for device_id in device_ids:
            session.add(
                DeviceConnection(device_id=device_id, instance_id=instance_id, stream_id="s")
            )
        session.commit()


def _disconnect(db: sessionmaker[Session], device_id: str) -> None:
    with db() as session:
        session.execute(sa.delete(DeviceConnection).where(DeviceConnection.device_id == device_id))
        session.commit()


def _device(db: sessionmaker[Session], device_id: str) -> Device:
    with db() as session:
        device = session.get(Device, device_id)
        assert device is not None
        return device


def _triggers(db: sessionmaker[Session], device_id: str) -> list[Trigger]:
    with db() as session:
        return list(
            session.scalars(
                sa.select(Trigger)
                .where(Trigger.device_id == device_id)
                .order_by(Trigger.scheduled_at)
            )
        )


def _scheduled_device(factory: Factory, config: dict[str, Any], first: datetime) -> str:
    return factory.device(config=config, next_trigger_at=first).device_id


async def test_connected_device_gets_one_trigger_per_slot_expiring_by_next_slot(
    make_scheduler: SchedulerMaker, factory: Factory, db: sessionmaker[Session]
) -> None:
    device_id = _scheduled_device(factory, EVERY_SECOND, T0)
    _connect(db, device_id)
    scheduler = make_scheduler()
    for step in range(5):
        result = await scheduler.tick(now=T0 + timedelta(seconds=step, milliseconds=300))
        assert (result.claimed, result.triggered, result.skipped) == (1, 1, 0)
    triggers = _triggers(db, device_id)
    assert [t.scheduled_at for t in triggers] == [T0 + timedelta(seconds=s) for s in range(5)]
    assert all(t.trigger_type == TriggerType.SCHEDULED for t in triggers)
    assert all(t.trigger_label == "scheduled_interval" for t in triggers)
    assert all(t.expires_at == t.scheduled_at + timedelta(seconds=1) for t in triggers)
    # Each overdue one was closed when the next slot came: never two open at once.
    assert [t.status for t in triggers] == [TriggerStatus.EXPIRED] * 4 + [TriggerStatus.PENDING]
    device = _device(db, device_id)
    assert device.next_trigger_at == T0 + timedelta(seconds=5)
    assert device.skipped_slots == 0
    assert device.last_slot_at == T0 + timedelta(seconds=4)

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

from cloud.core.config import Settings
from cloud.core.db import create_engine_for, create_session_factory
from cloud.models import (
    Device,
    DeviceConnection,
    ServerInstance,
    Trigger,
    TriggerStatus,
    TriggerType,
)
from cloud.scheduling.scheduler import SLOT_MARGIN, TriggerScheduler, seconds_to_next_tick
from tests.support.factories import Factory

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
        scheduler = TriggerScheduler.from_settings(
            create_session_factory(engine), scheduler_settings
        )
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


async def test_two_schedulers_over_many_ticks_settle_every_slot_exactly_once(
    make_scheduler: SchedulerMaker, factory: Factory, db: sessionmaker[Session]
) -> None:
    online = [_scheduled_device(factory, EVERY_SECOND, T0) for _ in range(12)]
    offline = [_scheduled_device(factory, EVERY_SECOND, T0) for _ in range(8)]
    _connect(db, *online)
    first, second = make_scheduler(scheduler_batch_size=3), make_scheduler(scheduler_batch_size=3)
    ticks = 30
    for step in range(ticks):
        now = T0 + timedelta(seconds=step, milliseconds=500)
        await asyncio.gather(first.tick(now=now), second.tick(now=now))
    with db() as session:
        rows = session.execute(
            sa.select(Trigger.device_id, Trigger.scheduled_at).where(
                Trigger.trigger_type == TriggerType.SCHEDULED
            )
        ).all()
        devices = {d.device_id: d for d in session.scalars(sa.select(Device))}
    assert len(rows) == len(set(rows)), "a slot got two triggers"
    per_device = {device_id: 0 for device_id in devices}
    for device_id, _ in rows:
        per_device[device_id] += 1
    for device_id, device in devices.items():
        assert device.next_trigger_at == T0 + timedelta(seconds=ticks)
        assert per_device[device_id] + device.skipped_slots == ticks, device_id
    assert all(per_device[d] == ticks for d in online)
    assert all(per_device[d] == 0 and devices[d].skipped_slots == ticks for d in offline)


async def test_offline_device_gets_no_trigger_and_resumes_on_reconnect(
    make_scheduler: SchedulerMaker, factory: Factory, db: sessionmaker[Session]
) -> None:
    device_id = _scheduled_device(factory, EVERY_SECOND, T0)
    scheduler = make_scheduler()
    for step in range(3):
        result = await scheduler.tick(now=T0 + timedelta(seconds=step, milliseconds=100))
        assert (result.triggered, result.skipped) == (0, 1)
    assert _triggers(db, device_id) == []
    device = _device(db, device_id)
    assert (device.next_trigger_at, device.skipped_slots) == (T0 + timedelta(seconds=3), 3)
    _connect(db, device_id)
    result = await scheduler.tick(now=T0 + timedelta(seconds=3, milliseconds=100))
    assert (result.triggered, result.skipped) == (1, 0)
    assert [t.scheduled_at for t in _triggers(db, device_id)] == [T0 + timedelta(seconds=3)]
    _disconnect(db, device_id)
    result = await scheduler.tick(now=T0 + timedelta(seconds=4, milliseconds=100))
    assert (result.triggered, result.skipped) == (0, 1)
    assert _device(db, device_id).skipped_slots == 4


async def test_slow_device_with_open_scheduled_trigger_is_skipped_not_piled(
    make_scheduler: SchedulerMaker, factory: Factory, db: sessionmaker[Session]
) -> None:
    device_id = _scheduled_device(factory, EVERY_SECOND, T0)
    _connect(db, device_id)
    with db() as session:  # e.g. left open from before a schedule change, alive for a minute
        session.add(
            Trigger(
                trigger_id=f"trg_{uuid.uuid4().hex}",
                device_id=device_id,
                trigger_type=TriggerType.SCHEDULED,
                status=TriggerStatus.SENT,
                scheduled_at=T0 - timedelta(seconds=30),
                expires_at=T0 + timedelta(seconds=60),
            )
        )
        session.commit()
    scheduler = make_scheduler()
    for step in range(5):
        result = await scheduler.tick(now=T0 + timedelta(seconds=step, milliseconds=100))
        assert (result.triggered, result.skipped) == (0, 1)
    assert len(_triggers(db, device_id)) == 1
    assert _device(db, device_id).skipped_slots == 5


async def test_missed_slots_after_downtime_are_counted_not_burst(
    make_scheduler: SchedulerMaker, factory: Factory, db: sessionmaker[Session]
) -> None:
    device_id = _scheduled_device(
        factory, {"trigger": {"enabled": True, "interval_seconds": 10}}, T0
    )
    _connect(db, device_id)
    result = await make_scheduler().tick(now=T0 + timedelta(hours=1, seconds=5))
    assert (result.triggered, result.skipped) == (1, 360)
    (trigger,) = _triggers(db, device_id)
    assert trigger.scheduled_at == T0 + timedelta(hours=1)  # the latest due slot
    assert trigger.expires_at == T0 + timedelta(hours=1, seconds=10)  # its next slot
    device = _device(db, device_id)
    assert device.next_trigger_at == T0 + timedelta(hours=1, seconds=10)


async def test_suspended_device_skips_its_slots(
    make_scheduler: SchedulerMaker, factory: Factory, db: sessionmaker[Session]
) -> None:
    from cloud.models import DeviceStatus

    device = factory.device(config=EVERY_SECOND, next_trigger_at=T0, status=DeviceStatus.SUSPENDED)
    _connect(db, device.device_id)
    result = await make_scheduler().tick(now=T0 + timedelta(milliseconds=100))
    assert (result.triggered, result.skipped) == (0, 1)


async def test_cron_schedule_creates_cron_labelled_triggers_with_ttl_setting(
    make_scheduler: SchedulerMaker, factory: Factory, db: sessionmaker[Session]
) -> None:
    config = {"trigger": {"enabled": True, "cron": "*/5 * * * *", "timezone": "Europe/Berlin"}}
    device_id = _scheduled_device(factory, config, T0)
    _connect(db, device_id)
    await make_scheduler(scheduled_trigger_ttl_seconds=60).tick(now=T0 + timedelta(seconds=1))
    (trigger,) = _triggers(db, device_id)
    assert trigger.trigger_label == "scheduled_cron"
    assert trigger.expires_at == T0 + timedelta(seconds=61)  # the TTL setting, before next slot
    assert _device(db, device_id).next_trigger_at == T0 + timedelta(minutes=5)


async def test_unscheduled_config_clears_next_trigger_at(
    make_scheduler: SchedulerMaker, factory: Factory, db: sessionmaker[Session]
) -> None:
    device_id = _scheduled_device(factory, {"trigger": {"enabled": False}}, T0)
    result = await make_scheduler().tick(now=T0 + timedelta(seconds=1))
    assert (result.claimed, result.triggered, result.skipped) == (1, 0, 0)
    assert _device(db, device_id).next_trigger_at is None


async def test_running_schedulers_survive_a_failing_tick_and_stop_in_time(
    make_scheduler: SchedulerMaker,
    factory: Factory,
    db: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import cloud.scheduling.scheduler as scheduler_module

    real_run_batch = scheduler_module.run_batch
    failures = {"left": 1}

    async def flaky_run_batch(*args: Any, **kwargs: Any) -> Any:
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("database went away")
        return await real_run_batch(*args, **kwargs)

    monkeypatch.setattr(scheduler_module, "run_batch", flaky_run_batch)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    online = _scheduled_device(factory, EVERY_SECOND, start)
    offline = _scheduled_device(factory, EVERY_SECOND, start)
    _connect(db, online)
    schedulers = [make_scheduler(scheduler_tick_seconds=0.05) for _ in range(2)]
    for scheduler in schedulers:
        await scheduler.start()
        await scheduler.start()  # idempotent
    await asyncio.sleep(3.3)
    for scheduler in schedulers:
        began = time.monotonic()
        await scheduler.stop()
        await scheduler.stop()  # idempotent
        assert time.monotonic() - began < 1.0
    assert all(s.ticks > 10 for s in schedulers)
    for device_id in (online, offline):
        device = _device(db, device_id)
        slots = int((device.next_trigger_at - start).total_seconds())
        assert slots >= 3
        triggers = _triggers(db, device_id)
        assert len({t.scheduled_at for t in triggers}) == len(triggers)
        assert len(triggers) + device.skipped_slots == slots
    assert len(_triggers(db, online)) >= 3
    assert _triggers(db, offline) == []


@pytest.mark.parametrize(
    ("wall_now", "period", "expected"),
    [
        (1_000.0, 1.0, SLOT_MARGIN),  # on a boundary: just after it
        (1_000.5, 1.0, 0.5 + SLOT_MARGIN),
        (1_000.0 + SLOT_MARGIN, 1.0, 1.0),  # ticking now: the next boundary, never 0
        (1_000.999, 1.0, 0.001 + SLOT_MARGIN),
        (1_003.0, 5.0, 2.0 + SLOT_MARGIN),  # 5 s ticks on multiples of 5 s since the epoch
    ],
)
def test_ticks_wait_for_just_after_the_next_period_boundary(
    wall_now: float, period: float, expected: float
) -> None:
    assert seconds_to_next_tick(wall_now, period) == pytest.approx(expected, abs=1e-6)

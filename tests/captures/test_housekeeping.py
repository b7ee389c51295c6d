"""Retention's housekeeping: orphaned files, old triggers and connection history; the pruner."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cloud.auth.pruner import Pruner
from cloud.captures.retention import RetentionWorker
from cloud.captures.storage import FilesystemStore, snapshot_key
from cloud.core.config import Settings
from cloud.core.db import create_engine_for, create_session_factory
from cloud.core.ids import new_record_id
from cloud.models import (
    ConnectionEventKind,
    DeviceConnectionEvent,
    RateCounter,
    Trigger,
    TriggerStatus,
    UserToken,
)
from tests.support.captures import jpeg_bytes, make_trigger
from tests.support.factories import Factory


def _exists(store: FilesystemStore, key: str) -> bool:
    return Path(store.url_or_path(key)).exists()


async def test_orphan_files_are_swept_and_old_terminal_triggers_pruned(
    database_url: str, settings: Settings, factory: Factory, db: sessionmaker[Session]
) -> None:
    device = factory.device()
    store = FilesystemStore(settings.snapshots_dir)
    now = datetime.now(UTC)
    old_key = snapshot_key(device.device_id, new_record_id(), now, "jpg")
    fresh_key = snapshot_key(device.device_id, new_record_id(), now, "jpg")
    for key in (old_key, fresh_key):
        store.put(key, jpeg_bytes(), "image/jpeg")
    two_hours_ago = time.time() - 7200
    os.utime(Path(store.url_or_path(old_key)), (two_hours_ago, two_hours_ago))
    old, recent, open_ = (make_trigger(db, device.device_id) for _ in range(3))
    with db() as session:
        session.execute(
            sa.update(Trigger)
            .where(Trigger.trigger_id.in_([old, recent]))
            .values(status=TriggerStatus.EXPIRED, finished_at=now - timedelta(days=1))
        )
        session.execute(
            sa.update(Trigger)
            .where(Trigger.trigger_id == old)
            .values(finished_at=now - timedelta(days=40))
        )
        session.commit()
    engine = create_engine_for(database_url, settings)
    worker = RetentionWorker(
        create_session_factory(engine),
        store,
        retention_days=30,
        interval=60.0,
        trigger_retention_days=30,
        orphan_grace_seconds=3600,
    )
    try:
        await worker.run_once()
    finally:
        await worker.stop()
        await engine.dispose()
    assert not worker.running
    assert not _exists(store, old_key)  # an orphan past the grace period
    assert _exists(store, fresh_key)  # maybe an upload still committing
    with db() as session:
        left = set(session.scalars(sa.select(Trigger.trigger_id)))
    assert left == {recent, open_}


async def test_connection_history_older_than_its_cutoff_is_pruned(
    database_url: str, settings: Settings, factory: Factory, db: sessionmaker[Session]
) -> None:
    device = factory.device()
    now = datetime.now(UTC)
    with db() as session:
        for stream_id, age_days in (("old", 40), ("recent", 1)):
            session.add(
                DeviceConnectionEvent(
                    device_id=device.device_id,
                    event=ConnectionEventKind.CONNECTED,
                    instance_id="i-test",
                    stream_id=stream_id,
                    at=now - timedelta(days=age_days),
                )
            )
        session.commit()
    engine = create_engine_for(database_url, settings)
    worker = RetentionWorker(
        create_session_factory(engine),
        FilesystemStore(settings.snapshots_dir),
        retention_days=0,
        interval=60.0,
        connection_history_days=30,
    )
    try:
        assert await worker.prune_connection_history() == 1
    finally:
        await worker.stop()
        await engine.dispose()
    with db() as session:
        left = set(session.scalars(sa.select(DeviceConnectionEvent.stream_id)))
    assert left == {"recent"}


async def test_pruner_deletes_dead_tokens_and_ended_windows(
    database_url: str, settings: Settings, factory: Factory, db: sessionmaker[Session]
) -> None:
    user = factory.user()
    now = datetime.now(UTC)
    with db() as session:
        session.execute(
            sa.update(UserToken)
            .where(UserToken.user_id == user.user_id)
            .values(expires_at=now - timedelta(days=2))
        )
        session.add(
            RateCounter(key="uploads:x", window_start=now, count=1, expires_at=now - timedelta(1))
        )
        session.add(
            RateCounter(key="uploads:y", window_start=now, count=1, expires_at=now + timedelta(1))
        )
        session.commit()
    engine = create_engine_for(database_url, settings)
    pruner = Pruner(create_session_factory(engine), interval=0.05)
    try:
        await pruner.start()
        deadline = time.monotonic() + 10
        while pruner.passes == 0 and time.monotonic() < deadline:
            await pruner.wait(0.05)
    finally:
        await pruner.stop()
        await engine.dispose()
    assert not pruner.running and pruner.passes >= 1
    with db() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(UserToken)) == 0
        assert list(session.scalars(sa.select(RateCounter.key))) == ["uploads:y"]

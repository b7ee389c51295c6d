"""Retention: expired captures leave with their snapshots; recent ones and other rows stay."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cloud.captures.retention import RetentionWorker
from cloud.captures.storage import FilesystemStore
from cloud.core.config import Settings
from cloud.core.db import create_engine_for, create_session_factory
from cloud.models import Capture, Trigger, TriggerStatus
from tests.support.captures import (
    capture_metadata,
    jpeg_bytes,
    make_trigger,
    upload_multipart,
)
from tests.support.factories import Factory
from tests.support.live_server import LiveServer


def _files(root: Path) -> set[str]:
    return {p.stem for p in root.rglob("*.jpg")} if root.exists() else set()


def _age(db: sessionmaker[Session], record_ids: list[str], days: float) -> None:
    with db() as session:
        session.execute(
            sa.update(Capture)
            .where(Capture.record_id.in_(record_ids))
            .values(received_at=datetime.now(UTC) - timedelta(days=days))
        )
        session.commit()


def _upload_many(server: LiveServer, factory: Factory, db, count: int) -> tuple[list[str], str]:
    device = factory.device()
    trigger_id = make_trigger(db, device.device_id, TriggerStatus.SENT)
    ids = []
    with server.client() as client:
        for index in range(count):
            trigger = trigger_id if index == 0 else None
            metadata = capture_metadata(device.device_id, trigger)
            response = upload_multipart(client, device.headers, metadata, jpeg_bytes(32, 32))
            assert response.status_code == 201
            ids.append(response.json()["record_id"])
    return ids, trigger_id


def test_worker_deletes_expired_rows_and_files_together(
    start_server, factory: Factory, db: sessionmaker[Session], settings: Settings
) -> None:
    server: LiveServer = start_server(retention_days=1, retention_interval_seconds=0.1)
    ids, trigger_id = _upload_many(server, factory, db, 4)
    old, recent = ids[:3], ids[3:]
    _age(db, old, days=2)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _files(settings.snapshots_dir) != set(recent):
        time.sleep(0.05)
    with db() as session:
        remaining = set(session.scalars(sa.select(Capture.record_id)))
        trigger = session.get(Trigger, trigger_id)
    assert remaining == set(recent)
    assert _files(settings.snapshots_dir) == set(recent)
    # The trigger outlives its capture: still executed, its capture link cleared.
    assert trigger is not None and trigger.status is TriggerStatus.EXECUTED
    assert trigger.capture_id is None
    assert server.stop() < 2.0, "the retention worker stops promptly"


async def test_zero_days_disables_and_concurrent_workers_split_batches(
    database_url: str, settings: Settings, factory: Factory, db: sessionmaker[Session]
) -> None:
    server = LiveServer(settings, database_url).start()
    try:
        ids, _ = await asyncio.to_thread(_upload_many, server, factory, db, 7)
    finally:
        await asyncio.to_thread(server.stop)
    _age(db, ids, days=40)
    engine = create_engine_for(database_url, settings)
    sessions = create_session_factory(engine)
    store = FilesystemStore(settings.snapshots_dir)
    try:
        disabled = RetentionWorker(sessions, store, retention_days=0, interval=0.01)
        await disabled.start()
        await asyncio.sleep(0.05)
        await disabled.stop()
        assert len(_files(settings.snapshots_dir)) == 7
        workers = [RetentionWorker(sessions, store, 30, 60.0, batch_size=2) for _ in range(2)]
        deleted = await asyncio.gather(*(w.purge() for w in workers))
    finally:
        await engine.dispose()
    assert sum(deleted) == 7
    assert _files(settings.snapshots_dir) == set()
    with db() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Capture)) == 0

"""Snapshots written while their admission runs (a key admitted moments before): whatever the
admission then answers, the files on disk are exactly those the stored rows name."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cloud.captures.admitted_keys import RecentlyAdmitted
from cloud.core.config import Settings
from cloud.models import Capture, Device, DeviceStatus
from tests.support.captures import capture_metadata, jpeg_bytes, upload_multipart
from tests.support.factories import Factory
from tests.support.live_server import LiveServer


def _files_are_the_rows(db: sessionmaker[Session], settings: Settings) -> bool:
    with db() as session:
        keys = set(session.scalars(sa.select(Capture.snapshot_key)))
    root: Path = settings.snapshots_dir
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    return files == keys


def test_repeated_refused_and_over_the_rate_uploads_of_an_admitted_key_leave_no_file(
    start_server, factory: Factory, db: sessionmaker[Session], settings: Settings
) -> None:
    server: LiveServer = start_server(uploads_per_device_per_minute=3)
    suspended, limited = factory.device(), factory.device()
    image = jpeg_bytes(64, 48)
    with server.client() as client:

        def upload(device, **fields) -> int:
            meta = capture_metadata(device.device_id, **fields)
            return upload_multipart(client, device.headers, meta, image).status_code

        assert upload(suspended, capture_id="cap-first") == 201  # its key is now remembered
        assert upload(suspended, capture_id="cap-first") == 200  # a repeat: its early file goes
        with db() as session, session.begin():
            session.execute(
                sa.update(Device)
                .where(Device.device_id == suspended.device_id)
                .values(status=DeviceStatus.SUSPENDED)
            )
        assert upload(suspended) == 403  # written early, refused: deleted
        assert upload(suspended) == 403  # the key forgotten: nothing written at all
        assert [upload(limited) for _ in range(5)] == [201, 201, 201, 429, 429]
    assert _files_are_the_rows(db, settings)
    with db() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Capture)) == 4


def test_a_key_is_remembered_for_its_device_until_it_expires_or_is_refused() -> None:
    recent = RecentlyAdmitted(seconds=60, capacity=2)
    recent.remember("CAM1", "hash-1")
    assert recent.holds("CAM1", "hash-1")
    assert not recent.holds("CAM1", "another key's hash")
    assert not recent.holds("CAM2", "hash-1")
    recent.forget("CAM1")
    assert not recent.holds("CAM1", "hash-1")
    for device in ("CAM1", "CAM2", "CAM3"):  # over capacity: the least recent goes
        recent.remember(device, "hash")
    assert [recent.holds(d, "hash") for d in ("CAM1", "CAM2", "CAM3")] == [False, True, True]
    expired = RecentlyAdmitted(seconds=0, capacity=2)
    expired.remember("CAM1", "hash-1")
    assert not expired.holds("CAM1", "hash-1")

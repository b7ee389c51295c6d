"""Snapshot stores: keys from validated ids only, atomic files, S3 against a real moto_server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from cloud.captures.storage import (
    FilesystemStore,
    S3Store,
    SnapshotNotFound,
    check_key,
    snapshot_key,
)
from cloud.core.config import StorageBackend
from tests.support.captures import capture_metadata, jpeg_bytes, upload_multipart
from tests.support.factories import Factory
from tests.support.waiting import free_port

RECORD = "cap_" + "ab" * 16
DAY = datetime(2026, 2, 3, tzinfo=UTC)
MOTO_START_TIMEOUT = 20.0  # seconds


def test_key_layout_is_device_date_record() -> None:
    assert snapshot_key("CAM-1", RECORD, DAY, "jpg") == f"CAM-1/2026/02/03/{RECORD}.jpg"


@pytest.mark.parametrize(
    ("device_id", "record_id"),
    [
        ("..", RECORD),
        ("../etc", RECORD),
        ("CAM/1", RECORD),
        ("CAM\n", RECORD),
        ("CAM", "cap_../../x"),
        ("CAM", RECORD + "\n"),
        ("CAM", "trg_" + "ab" * 16),
    ],
)
def test_keys_refuse_ids_that_are_not_well_formed(device_id: str, record_id: str) -> None:
    with pytest.raises(ValueError):
        snapshot_key(device_id, record_id, DAY, "jpg")


@pytest.mark.parametrize(
    "key",
    [
        f"../CAM/2026/02/03/{RECORD}.jpg",
        f"/etc/2026/02/03/{RECORD}.jpg",
        f"CAM/2026/02/03/../../{RECORD}.jpg",
        f"CAM/2026/02/03/{RECORD}.sh",
        "CAM/2026/02/03/passwd",
    ],
)
def test_filesystem_store_refuses_foreign_keys(tmp_path: Path, key: str) -> None:
    store = FilesystemStore(tmp_path)
    with pytest.raises(ValueError):
        store.put(key, b"x", "image/jpeg")
    with pytest.raises(ValueError):
        check_key(key)
    assert list(tmp_path.rglob("*")) == []


def test_filesystem_store_writes_a_key_once_and_no_other_file(tmp_path: Path) -> None:
    """A snapshot is immutable once stored (its ETag is its hash): a second write of its key
    is refused and changes nothing; a write leaves no file beside the snapshot's own."""
    store = FilesystemStore(tmp_path / "snapshots")
    key = snapshot_key("CAM", RECORD, DAY, "jpg")
    store.put(key, b"first", "image/jpeg")
    with pytest.raises(FileExistsError):
        store.put(key, b"second", "image/jpeg")
    assert store.get(key) == b"first"
    assert Path(store.url_or_path(key)) == tmp_path / "snapshots" / key
    assert [p.name for p in (tmp_path / "snapshots").rglob("*") if p.is_file()] == [f"{RECORD}.jpg"]
    store.delete(key)
    store.delete(key)  # idempotent
    with pytest.raises(SnapshotNotFound):
        store.get(key)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A real S3-compatible HTTP server (moto_server) on a free port."""
    pytest.importorskip("boto3")
    executable = Path(sys.executable).parent / "moto_server"
    if not executable.exists():
        pytest.skip("moto_server is not installed (pip install -r requirements-dev.txt)")
    port = free_port()
    process = subprocess.Popen(
        [str(executable), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + MOTO_START_TIMEOUT
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def s3_bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    import boto3

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    bucket = f"visant-{os.urandom(4).hex()}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    return bucket


def test_s3_store_round_trip(moto_endpoint: str, s3_bucket: str) -> None:
    store = S3Store(s3_bucket, moto_endpoint, "us-east-1")
    key = snapshot_key("CAM", RECORD, DAY, "png")
    store.put(key, b"\x89PNG data", "image/png")
    assert store.get(key) == b"\x89PNG data"
    assert store.url_or_path(key) == f"s3://{s3_bucket}/{key}"
    store.delete(key)
    with pytest.raises(SnapshotNotFound):
        store.get(key)
    with pytest.raises(ValueError):
        store.put("../escape", b"x", "image/png")


def test_upload_and_image_through_s3_backend(
    start_server, factory: Factory, db: sessionmaker[Session], moto_endpoint: str, s3_bucket: str
) -> None:
    server = start_server(
        storage_backend=StorageBackend.S3,
        s3_bucket=s3_bucket,
        s3_endpoint_url=moto_endpoint,
        s3_region="us-east-1",
    )
    user = factory.user()
    device = factory.device(org_id=user.org_id)
    image = jpeg_bytes(128, 96)
    with server.client() as client:
        uploaded = upload_multipart(
            client, device.headers, capture_metadata(device.device_id), image
        )
        assert uploaded.status_code == 201, uploaded.text
        record_id = uploaded.json()["record_id"]
        fetched = client.get(f"/v1/captures/{record_id}/image", headers=user.headers)
    assert fetched.status_code == 200
    assert fetched.content == image

"""Snapshot store: filesystem by default, S3-compatible optional; keys from validated ids only.

Every method but `save` blocks (disk or network); async callers run them with
`asyncio.to_thread`, and store an upload's snapshot with `save`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from cloud.captures.grouped_writes import GroupedWrites
from cloud.core.config import Settings, StorageBackend
from cloud.core.ids import DEVICE_ID, DEVICE_ID_PATTERN, RECORD_ID

logger = logging.getLogger(__name__)

_KEY = re.compile(DEVICE_ID_PATTERN[1:-1] + r"/\d{4}/\d{2}/\d{2}/cap_[0-9a-f]{32}\.(jpg|png)")
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_FADVISE = getattr(os, "posix_fadvise", None)  # Linux; absent on macOS
WRITE_THREADS = 2  # snapshot groups written at once (grouped_writes.py has the measurements)
S3_CONNECT_TIMEOUT = 5.0  # seconds
S3_READ_TIMEOUT = 30.0  # seconds


class SnapshotNotFound(Exception):
    """The key names no stored snapshot."""


def snapshot_key(device_id: str, record_id: str, day: datetime, extension: str) -> str:
    """`<device_id>/<YYYY>/<MM>/<DD>/<record_id>.<ext>`, refusing ids that are not well-formed."""
    if not DEVICE_ID.fullmatch(device_id) or not RECORD_ID.fullmatch(record_id):
        raise ValueError("snapshot keys are built from validated ids only")
    key = f"{device_id}/{day:%Y/%m/%d}/{record_id}.{extension}"
    check_key(key)
    return key


def check_key(key: str) -> str:
    """The key itself when it has the shape `snapshot_key` builds; ValueError otherwise."""
    if not _KEY.fullmatch(key):
        raise ValueError(f"not a snapshot key: {key!r}")
    return key


class SnapshotStore(Protocol):
    """Where snapshot bytes live; keys come from `snapshot_key`."""

    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    async def save(self, key: str, data: bytes, content_type: str) -> str:
        """`put` without blocking the event loop; the bytes' sha256 (hex), hashed off the
        loop too."""
        ...

    def get(self, key: str) -> bytes: ...

    def delete(self, key: str) -> None: ...

    def url_or_path(self, key: str) -> str: ...

    def keys_older_than(self, seconds: float) -> Iterator[str]: ...


class FilesystemStore:
    """Files under one root, each written once under its key and fsynced before `put` returns.

    No temp file and rename: a snapshot's row is stored only after `put` returned, so a file
    cut short by a crash is named by no row and retention's orphan sweep removes it (a temp
    file was never swept). No buffered file object, two calls fewer than write-then-rename
    (docs/performance.md). A key is never written twice (a fresh record id each, and its
    bytes are served as immutable), so an existing file is refused, not replaced. `save`
    writes on a thread of the store's own, grouping the writes that wait (grouped_writes.py).
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._writes = GroupedWrites(self.put_many, WRITE_THREADS, "snapshot-writes")

    def _path(self, key: str) -> Path:
        # The key's shape (checked) has no "..", no leading "/" and no other separators than
        # the four it builds, so joining cannot leave the root: no resolve() syscalls needed.
        return self.root / check_key(key)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        result = self.put_many([(key, data)])[0]
        if isinstance(result, BaseException):
            raise result

    async def save(self, key: str, data: bytes, content_type: str) -> str:
        return await self._writes.write((key, data))

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> list[str | BaseException]:
        """Hash and write each (key, data), then fsync each: durable when this returns; each
        item's sha256 (hex), or the error that failed it (its file removed). Written first,
        each with its writeback started, and synced after, a group's files share the file
        system's journal commits: the first fsync commits the blocks of all, and the fsyncs
        after it find little or nothing left to do."""
        results: list[str | BaseException] = []
        written: list[tuple[int, int, Path]] = []
        for key, data in items:
            try:
                path = self._path(key)
                digest = hashlib.sha256(data).hexdigest()  # releases the GIL while it hashes
                descriptor = _write_new(path, data)
                written.append((len(results), descriptor, path))
                _start_writeback(descriptor)
                results.append(digest)
            except Exception as exc:  # noqa: BLE001 - reaches only this item's upload
                results.append(exc)
        for index, descriptor, path in written:
            try:
                os.fsync(descriptor)
            except Exception as exc:  # noqa: BLE001 - reaches only this item's upload
                results[index] = exc
                path.unlink(missing_ok=True)
            finally:
                os.close(descriptor)
        return results

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise SnapshotNotFound(key) from exc

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def url_or_path(self, key: str) -> str:
        return str(self._path(key))

    def keys_older_than(self, seconds: float) -> Iterator[str]:
        """Keys of snapshots written more than `seconds` ago."""
        cutoff = time.time() - seconds
        if not self.root.exists():
            return
        for path in self.root.rglob("cap_*"):
            key = path.relative_to(self.root).as_posix()
            try:
                if _KEY.fullmatch(key) and path.stat().st_mtime < cutoff:
                    yield key
            except OSError:
                continue


async def put_on_a_thread(store: SnapshotStore, key: str, data: bytes, content_type: str) -> str:
    """`save` for a store whose `put` blocks: the put and the hash on one worker thread."""
    return await asyncio.to_thread(_put_and_hash, store, key, data, content_type)


def _put_and_hash(store: SnapshotStore, key: str, data: bytes, content_type: str) -> str:
    store.put(key, data, content_type)
    return hashlib.sha256(data).hexdigest()


def _start_writeback(descriptor: int) -> None:
    """Start writing the file's pages to disk now, without waiting (POSIX_FADV_DONTNEED
    queues the writeback of dirty pages and drops only pages already clean). Its blocks are
    then allocated with those of the group's other files, so the group's first fsync commits
    them all: in the server an fsync phase of ~11 ms per group of ~17 files became ~4 ms, and
    the uploads' write stage 27 -> 22 ms (docs/performance.md)."""
    if _FADVISE is not None:
        try:
            _FADVISE(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:  # only a hint: the fsync after it does the work either way
            pass


def _write_new(path: Path, data: bytes) -> int:
    """The descriptor of a new file at `path` holding `data`, not yet synced."""
    try:
        descriptor = os.open(path, _CREATE, 0o600)
    except FileNotFoundError:  # the day's first snapshot of this device
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, _CREATE, 0o600)
    try:
        written = os.write(descriptor, data)
        if written < len(data):
            with memoryview(data) as rest:
                while written < len(data):
                    written += os.write(descriptor, rest[written:])
    except BaseException:
        os.close(descriptor)
        path.unlink(missing_ok=True)
        raise
    return descriptor


class S3Store:
    """An S3-compatible bucket through boto3 (installed separately: `pip install boto3`)."""

    def __init__(
        self,
        bucket: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any | None = None,
    ) -> None:
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self._client = client or _boto3_client(endpoint_url, region)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self._client.put_object(
            Bucket=self.bucket, Key=check_key(key), Body=data, ContentType=content_type
        )

    async def save(self, key: str, data: bytes, content_type: str) -> str:
        return await put_on_a_thread(self, key, data, content_type)

    def get(self, key: str) -> bytes:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=check_key(key))
        except self._client.exceptions.NoSuchKey as exc:
            raise SnapshotNotFound(key) from exc
        with response["Body"] as body:
            return body.read()

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=check_key(key))

    def url_or_path(self, key: str) -> str:
        return f"s3://{self.bucket}/{check_key(key)}"

    def keys_older_than(self, seconds: float) -> Iterator[str]:
        cutoff = time.time() - seconds
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket):
            for item in page.get("Contents", ()):
                if _KEY.fullmatch(item["Key"]) and item["LastModified"].timestamp() < cutoff:
                    yield item["Key"]


def _boto3_client(endpoint_url: str | None, region: str | None) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:  # boto3 is optional: only the s3 backend needs it
        raise RuntimeError("VISANT_STORAGE_BACKEND=s3 needs boto3: pip install boto3") from exc
    config = Config(
        connect_timeout=S3_CONNECT_TIMEOUT,
        read_timeout=S3_READ_TIMEOUT,
        retries={"max_attempts": 3, "mode": "standard"},
    )
    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


def build_store(settings: Settings) -> SnapshotStore:
    """The store the settings name."""
    if settings.storage_backend is StorageBackend.S3:
        if not settings.s3_bucket:
            raise RuntimeError("VISANT_STORAGE_BACKEND=s3 needs VISANT_S3_BUCKET")
        return S3Store(settings.s3_bucket, settings.s3_endpoint_url, settings.s3_region)
    return FilesystemStore(settings.snapshots_dir)

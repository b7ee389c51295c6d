"""Builders for capture tests: real JPEG/PNG bytes (OpenCV), upload bodies, triggers."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from cloud.captures.storage import FilesystemStore, put_on_a_thread
from cloud.core.config import Settings
from cloud.core.ids import new_trigger_id
from cloud.models import Trigger, TriggerStatus, TriggerType


def jpeg_bytes(width: int = 320, height: int = 240, seed: int = 0) -> bytes:
    """A real noisy JPEG made by OpenCV."""
    frame = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return encoded.tobytes()


def png_bytes(width: int = 64, height: int = 48) -> bytes:
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    cv2.rectangle(frame, (4, 4), (width // 2, height // 2), (0, 255, 0), -1)
    ok, encoded = cv2.imencode(".png", frame)
    assert ok
    return encoded.tobytes()


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose valid IHDR claims a huge size: a decompression bomb stopped at the header."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + b"\x00" * 64


def capture_metadata(device_id: str, trigger_id: str | None = None, **fields: Any) -> dict:
    document: dict[str, Any] = {
        "device_id": device_id,
        "trigger_id": trigger_id,
        "captured_at": datetime.now(UTC).isoformat(),
        "trigger_label": None,
        "metadata": {"camera": "test"},
        "detections": [],
    }
    document.update(fields)
    return document


def upload_multipart(
    client: httpx.Client,
    headers: dict[str, str],
    metadata: dict[str, Any],
    image: bytes,
    content_type: str = "image/jpeg",
) -> httpx.Response:
    files = {"image": ("capture.jpg", image, content_type)}
    return client.post(
        "/v1/captures", files=files, data={"metadata": json.dumps(metadata)}, headers=headers
    )


def upload_json(
    client: httpx.Client, headers: dict[str, str], metadata: dict[str, Any], image: bytes
) -> httpx.Response:
    body = {**metadata, "image_base64": base64.b64encode(image).decode()}
    return client.post("/v1/captures", json=body, headers=headers)


def make_trigger(
    db: sessionmaker[Session],
    device_id: str,
    status: TriggerStatus = TriggerStatus.SENT,
    trigger_type: TriggerType = TriggerType.MANUAL,
    label: str | None = "test",
) -> str:
    """A trigger row written directly (the trigger API is another issue's)."""
    now = datetime.now(UTC)
    trigger_id = new_trigger_id()
    with db() as session:
        session.add(
            Trigger(
                trigger_id=trigger_id,
                device_id=device_id,
                trigger_type=trigger_type,
                trigger_label=label,
                status=status,
                scheduled_at=now,
                created_at=now,
                sent_at=now if status is TriggerStatus.SENT else None,
                expires_at=now + timedelta(minutes=5),
            )
        )
        session.commit()
    return trigger_id


class ActsOnFirstPut:
    """A snapshot store that runs `action` once, after writing the first snapshot: between
    that upload's admission and its INSERT, in the upload's own worker thread."""

    def __init__(self, inner: FilesystemStore, action: Callable[[], None]):
        self.inner, self.action, self.acted = inner, action, False

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.inner.put(key, data, content_type)
        if not self.acted:
            self.acted = True
            self.action()

    async def save(self, key: str, data: bytes, content_type: str) -> str:
        return await put_on_a_thread(self, key, data, content_type)

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def url_or_path(self, key: str) -> str:
        return self.inner.url_or_path(key)


def snapshot_files(settings: Settings) -> list[Path]:
    """Every file under the snapshot directory (none when it does not exist)."""
    root = settings.snapshots_dir
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []

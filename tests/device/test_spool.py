from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.spool import REJECTED_DIR, Spool


@pytest.fixture
def jpeg() -> bytes:
    ok, buffer = cv2.imencode(".jpg", np.full((48, 64, 3), 128, np.uint8))
    assert ok
    return buffer.tobytes()


def test_entries_come_back_oldest_first_after_restart(tmp_path: Path, jpeg: bytes) -> None:
    spool = Spool(tmp_path, 10_000_000)
    for index in range(3):
        spool.put(jpeg, {"trigger_id": f"trg_{index}"}, f"trg_{index}")
    reopened = Spool(tmp_path, 10_000_000)
    loaded = [reopened.load(entry) for entry in reopened.entries()]
    assert [meta["trigger_id"] for _, meta in loaded] == ["trg_0", "trg_1", "trg_2"]
    assert all(image == jpeg for image, _ in loaded)


def test_remove_deletes_image_and_metadata(tmp_path: Path, jpeg: bytes) -> None:
    spool = Spool(tmp_path, 10_000_000)
    spool.remove(spool.put(jpeg, {}, "trg_a"))
    assert spool.entries() == []
    assert [p.name for p in tmp_path.iterdir()] == [REJECTED_DIR]


def test_image_without_metadata_is_crash_debris_removed_at_start(
    tmp_path: Path, jpeg: bytes
) -> None:
    spool = Spool(tmp_path, 10_000_000)
    entry = spool.put(jpeg, {}, "trg_a")
    entry.meta_path.unlink()  # crash between the two writes
    (tmp_path / ".x.json.123.tmp").write_bytes(b"partial")
    Spool(tmp_path, 10_000_000)
    assert sorted(p.name for p in tmp_path.iterdir()) == [REJECTED_DIR]


def test_full_spool_drops_oldest_with_a_warning(
    tmp_path: Path, jpeg: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path, 10_000_000)
    spool.remove(spool.put(jpeg, {"trigger_id": "trg_x"}, "trg_x"))
    limit = 3 * spool.put(jpeg, {"trigger_id": "trg_y"}, "trg_y").size()
    spool = Spool(tmp_path, limit)
    with caplog.at_level(logging.WARNING):
        for index in range(5):
            spool.put(jpeg, {"trigger_id": f"trg_{index}"}, f"trg_{index}")
    remaining = [spool.load(e)[1]["trigger_id"] for e in spool.entries()]  # type: ignore[index]
    assert remaining == ["trg_2", "trg_3", "trg_4"]
    assert spool.total_bytes() <= limit
    assert "dropping oldest capture" in caplog.text


def test_rejected_entry_is_moved_aside_with_reason(tmp_path: Path, jpeg: bytes) -> None:
    spool = Spool(tmp_path, 10_000_000)
    entry = spool.put(jpeg, {"trigger_id": "trg_a"}, "trg_a")
    spool.reject(entry, "422 malformed")
    assert spool.entries() == []
    rejected = tmp_path / REJECTED_DIR
    document = json.loads((rejected / entry.meta_path.name).read_text())
    assert document["rejected_reason"] == "422 malformed"
    assert (rejected / entry.image_path.name).read_bytes() == jpeg


def test_unsafe_tag_cannot_escape_the_spool_dir(tmp_path: Path, jpeg: bytes) -> None:
    entry = Spool(tmp_path, 10_000_000).put(jpeg, {}, "../../etc/passwd")
    assert entry.image_path.parent == tmp_path

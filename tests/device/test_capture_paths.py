"""--save-frames names files from a server-sent trigger id: only safe characters reach the path."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from device.capture import CapturePipeline
from device.detection import NullDetector


def test_saved_frame_name_cannot_leave_the_frames_dir(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    camera: Any = object()  # finish() encodes a frame it is given; no camera is read
    pipeline = CapturePipeline(camera, NullDetector(), frames)
    frame = np.full((8, 8, 3), 100, np.uint8)
    pipeline.finish(frame, [], {}, datetime(2026, 1, 1, tzinfo=UTC), "../../escape/\x00x")
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) == 1 and written[0].parent == frames
    assert "/" not in written[0].name[len("20260101_000000_000000_") :]

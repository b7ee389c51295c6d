from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from device.camera import (
    Camera,
    CameraError,
    CameraSettings,
    SourceKind,
    classify_source,
    parse_resolution,
)


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("0", SourceKind.WEBCAM),
        ("2", SourceKind.WEBCAM),
        ("rtsp://cam.local/stream1", SourceKind.STREAM),
        ("http://cam.local/mjpg", SourceKind.STREAM),
        ("/data/scene.JPG", SourceKind.IMAGE),
        ("clip.mp4", SourceKind.VIDEO),
    ],
)
def test_source_kind_is_recognised(source: str, kind: SourceKind) -> None:
    assert classify_source(source) is kind


def test_resolution_parses_width_by_height() -> None:
    assert parse_resolution("1920x1080") == (1920, 1080)
    for bad in ("1920", "x1080", "axb", "0x10", "1920*1080"):
        with pytest.raises(ValueError):
            parse_resolution(bad)


def test_image_source_returns_the_file_as_bgr_frame(scene_image: Path) -> None:
    camera = Camera(str(scene_image), None, CameraSettings())
    camera.open()
    frame = camera.grab()
    assert frame.shape == (240, 320, 3)
    assert frame[100, 100].tolist() == pytest.approx([0, 200, 255], abs=8)


def test_image_source_is_reread_so_a_replaced_file_is_seen(scene_image: Path) -> None:
    camera = Camera(str(scene_image), None, CameraSettings())
    camera.grab()
    cv2.imwrite(str(scene_image), np.full((50, 60, 3), 255, np.uint8))
    assert camera.grab().shape == (50, 60, 3)


def test_configured_resolution_scales_the_frame(scene_image: Path) -> None:
    camera = Camera(str(scene_image), None, CameraSettings(resolution=(160, 120)))
    assert camera.grab().shape == (120, 160, 3)
    camera.reconfigure(CameraSettings(resolution=(64, 48)))
    assert camera.grab().shape == (48, 64, 3)


def test_missing_image_raises_camera_error(tmp_path: Path) -> None:
    camera = Camera(str(tmp_path / "nope.jpg"), None, CameraSettings())
    with pytest.raises(CameraError, match="not found"):
        camera.open()


def test_undecodable_image_raises_camera_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"not a jpeg")
    with pytest.raises(CameraError, match="cannot decode"):
        Camera(str(path), None, CameraSettings()).grab()


def _write_video(path: Path, frames: int) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    assert writer.isOpened()
    for index in range(frames):
        # Frame n is uniformly grey level 20*n: tells which frame was read.
        writer.write(np.full((48, 64, 3), 20 * index, np.uint8))
    writer.release()


def _frame_number(frame: np.ndarray) -> int:
    return round(float(frame.mean()) / 20)


def test_video_warmup_discards_buffered_frames_and_loops(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    _write_video(path, 5)
    camera = Camera(str(path), None, CameraSettings(warmup=2))
    assert _frame_number(camera.grab()) == 2  # frames 0 and 1 discarded
    assert _frame_number(camera.grab(warmup=0)) == 3
    assert _frame_number(camera.grab(warmup=0)) == 4
    assert _frame_number(camera.grab(warmup=0)) == 0  # end of file: loops
    camera.close()


def test_unopenable_stream_raises_camera_error() -> None:
    camera = Camera("rtsp://127.0.0.1:1/none", None, CameraSettings())
    with pytest.raises(CameraError):
        camera.open()

"""OpenCV's HOG people detector, the default that needs no model file, on a real photograph.

`tests/data/basketball1.jpg` is OpenCV's `samples/data/basketball1.png` (Apache-2.0 AND
BSD-3-Clause, as shipped in Debian's opencv-doc); see tests/data/README.md.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from device.detection import DetectorSettings, create_detector
from device.detection.opencv_backend import margin_to_confidence

PHOTO = Path(__file__).parents[1] / "data" / "basketball1.jpg"
PLAYER = (0.0, 40.0, 190.0, 474.0)  # full-body player on the left, hand-measured xyxy


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area


@pytest.fixture(scope="module")
def detector():
    with create_detector(DetectorSettings()) as detector:
        yield detector


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    image = cv2.imread(str(PHOTO))
    assert image is not None, f"cannot read {PHOTO}"
    return image


def test_finds_the_person_in_a_photograph(detector, photo) -> None:
    detections = detector.detect(photo)

    best = max(detections, key=lambda d: iou(d.box, PLAYER))
    assert best.label == "person"
    assert iou(best.box, PLAYER) > 0.7
    assert 0.25 <= best.confidence <= 1.0


def test_large_frames_are_shrunk_and_boxes_mapped_back(detector, photo) -> None:
    big = cv2.resize(photo, None, fx=3, fy=3)  # 1920x1440, processed at 640x480

    detections = detector.detect(big)

    scaled_player = tuple(v * 3 for v in PLAYER)
    assert max(iou(d.box, scaled_player) for d in detections) > 0.7
    assert all(
        0 <= d.box[0] < d.box[2] <= 1920 and 0 <= d.box[1] < d.box[3] <= 1440 for d in detections
    )


@pytest.mark.parametrize("value", [0, 128, 255])
def test_blank_frame_has_nobody(detector, value) -> None:
    assert detector.detect(np.full((720, 1280, 3), value, dtype=np.uint8)) == []


def test_high_confidence_threshold_drops_weak_detections(photo) -> None:
    with create_detector(DetectorSettings(confidence=0.99)) as strict:
        assert strict.detect(photo) == []


def test_margin_squash_is_monotonic_into_unit_range() -> None:
    confidences = margin_to_confidence(np.array([-1.0, 0.0, 0.5, 1.0, 2.0, 10.0]))

    assert confidences[0] == confidences[1] == 0.0
    assert np.all(np.diff(confidences[1:]) > 0) and confidences[-1] <= 1.0

"""People detection with OpenCV's built-in HOG + linear SVM: needs no model file, runs anywhere."""

from __future__ import annotations

import logging

import cv2
import numpy as np

from device.detection.base import Detection, Detector
from device.detection.yolo import nms

logger = logging.getLogger(__name__)

WIN_STRIDE = (8, 8)  # pixels; the detector's 64x128 window moves this far between tests
PADDING = (8, 8)  # pixels added around the image so people at the border still fit a window
PYRAMID_SCALE = 1.05  # finer than this costs time for little recall on 640-pixel frames


def margin_to_confidence(margins: np.ndarray) -> np.ndarray:
    """Squash SVM margins (0 at the decision boundary, ~3 for a clear person) into 0..1.

    `1 - exp(-margin)` is monotonic, 0 at the boundary, ~0.63 at margin 1 and ~0.86 at margin
    2, so the shared `--confidence` threshold means roughly the same strictness as for YOLO.
    """
    return 1.0 - np.exp(-np.clip(margins, 0.0, None))


class OpenCVPeopleDetector(Detector):
    """HOG people detector; frames are shrunk so their longer side is at most `max_side`."""

    name = "opencv"

    def __init__(self, confidence: float = 0.25, iou: float = 0.45, max_side: int = 640) -> None:
        self.confidence = confidence
        self.iou = iou
        self.max_side = max_side
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def detect(self, frame: np.ndarray) -> list[Detection]:
        height, width = frame.shape[:2]
        # HOG cost grows with pixel count; people under ~128 px tall are missed either way.
        scale = min(1.0, self.max_side / max(height, width))
        image = frame if scale == 1.0 else cv2.resize(frame, None, fx=scale, fy=scale)
        rects, margins = self._hog.detectMultiScale(
            image, winStride=WIN_STRIDE, padding=PADDING, scale=PYRAMID_SCALE
        )
        if len(rects) == 0:
            return []
        rects = np.asarray(rects, dtype=np.float32).reshape(-1, 4) / scale
        boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
        scores = margin_to_confidence(np.asarray(margins, dtype=np.float32).reshape(-1))
        candidates = np.flatnonzero(scores >= self.confidence)
        keep = candidates[
            nms(
                boxes[candidates],
                scores[candidates],
                np.zeros(len(candidates), dtype=np.int64),
                self.iou,
            )
        ]
        return [
            Detection(
                label="person",
                confidence=float(scores[i]),
                box=(float(x1), float(y1), float(x2), float(y2)),
            )
            for i, (x1, y1, x2, y2) in zip(keep, boxes[keep], strict=True)
        ]

"""Class names: the COCO 80 used by stock YOLO models, or one name per line from a file."""

from __future__ import annotations

import logging
from pathlib import Path

from device.detection.base import DetectorConfigError

logger = logging.getLogger(__name__)

COCO_LABELS: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip


def load_labels(path: str | None) -> tuple[str, ...]:
    """Return the class names in model order: COCO when `path` is None, else the file's lines."""
    if path is None:
        return COCO_LABELS
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DetectorConfigError(f"cannot read labels file {path}: {exc.strerror}") from exc
    labels = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not labels:
        raise DetectorConfigError(f"labels file {path} has no names")
    return labels

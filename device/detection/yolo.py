"""The one YOLO pre/post-processing pipeline shared by the torch and TensorRT backends.

Models follow the YOLOv8/v11 export layout: input `[1, 3, S, S]` float RGB in 0..1, output
`[1, 4 + classes, anchors]` where the first four rows are cx, cy, w, h in model-input pixels
and the rest are per-class scores (already sigmoid-ed; there is no objectness row).
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from device.detection.base import Detection, Detector, DetectorConfigError

logger = logging.getLogger(__name__)

PAD_VALUE = 114  # grey used by the YOLO training letterbox; other values shift scores slightly
MAX_NMS_CANDIDATES = 30_000  # bounds NMS cost when a bad threshold lets everything through
MAX_DETECTIONS = 300


@dataclass(frozen=True)
class Letterbox:
    """How a frame was scaled and padded into the square model input, to map boxes back."""

    scale: float
    pad_x: int
    pad_y: int
    frame_width: int
    frame_height: int

    def to_model(self, boxes: np.ndarray) -> np.ndarray:
        """Map xyxy boxes from frame pixels to model-input pixels."""
        offset = np.array([self.pad_x, self.pad_y, self.pad_x, self.pad_y], dtype=np.float32)
        return boxes.astype(np.float32) * self.scale + offset

    def to_frame(self, boxes: np.ndarray) -> np.ndarray:
        """Map xyxy boxes from model-input pixels to frame pixels, clipped to the frame."""
        offset = np.array([self.pad_x, self.pad_y, self.pad_x, self.pad_y], dtype=np.float32)
        mapped = (boxes.astype(np.float32) - offset) / self.scale
        mapped[:, 0::2] = mapped[:, 0::2].clip(0, self.frame_width)
        mapped[:, 1::2] = mapped[:, 1::2].clip(0, self.frame_height)
        return mapped


def letterbox(frame: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """Resize `frame` to fit a `size`x`size` square keeping aspect, centred on grey padding."""
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    height, width = frame.shape[:2]
    scale = min(size / height, size / width)
    new_width = min(size, int(round(width * scale)))
    new_height = min(size, int(round(height * scale)))
    if (new_width, new_height) != (width, height):
        frame = cv2.resize(frame, (new_width, new_height), interpolation=cv2.INTER_LINEAR)
    pad_x = (size - new_width) // 2
    pad_y = (size - new_height) // 2
    padded = cv2.copyMakeBorder(
        frame,
        pad_y,
        size - new_height - pad_y,
        pad_x,
        size - new_width - pad_x,
        cv2.BORDER_CONSTANT,
        value=(PAD_VALUE, PAD_VALUE, PAD_VALUE),
    )
    return padded, Letterbox(scale, pad_x, pad_y, width, height)


def to_blob(image: np.ndarray) -> np.ndarray:
    """Turn a BGR uint8 HxWx3 image into a `[1, 3, H, W]` float32 RGB tensor in 0..1."""
    rgb = image[:, :, ::-1].transpose(2, 0, 1)
    blob = np.empty((1, *rgb.shape), dtype=np.float32)
    np.multiply(rgb, np.float32(1 / 255), out=blob[0], casting="unsafe")
    return blob


def decode(
    output: np.ndarray,
    confidence: float,
    class_ids: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (xyxy boxes, scores, class ids) of anchors whose best class score >= `confidence`.

    `class_ids`, when given, restricts the candidates to those classes before picking the best.
    """
    if output.ndim == 3:
        if output.shape[0] != 1:
            raise ValueError(f"expected batch 1 output, got shape {output.shape}")
        output = output[0]
    if output.ndim != 2 or output.shape[0] < 5:
        raise ValueError(f"expected YOLO output [1, 4+classes, anchors], got {output.shape}")
    output = output.astype(np.float32, copy=False)
    class_scores = output[4:]
    if class_ids is not None:
        class_scores = class_scores[class_ids]
    best = class_scores.argmax(axis=0)
    scores = np.take_along_axis(class_scores, best[None, :], axis=0)[0]
    keep = scores >= confidence
    cx, cy, w, h = output[:4, keep]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    labels = best[keep] if class_ids is None else class_ids[best[keep]]
    return boxes, scores[keep], labels.astype(np.int64)


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    iou_threshold: float,
    max_detections: int = MAX_DETECTIONS,
) -> np.ndarray:
    """Return indices of the boxes kept by class-aware greedy NMS, best score first.

    Boxes of different classes never suppress each other: each class is shifted to its own
    disjoint coordinate range (the batched-NMS offset trick), so one pass handles all classes.
    """
    if len(boxes) == 0:
        return np.empty(0, dtype=np.int64)
    order = np.argsort(-scores, kind="stable")[:MAX_NMS_CANDIDATES]
    span = float(boxes.max() - boxes.min()) + 1.0
    shifted = boxes + (class_ids.astype(np.float32) * span)[:, None]
    x1, y1, x2, y2 = shifted.T
    areas = (x2 - x1).clip(0) * (y2 - y1).clip(0)
    keep: list[int] = []
    # One iteration per *kept* box; each suppresses all its overlaps in one vector operation.
    while order.size and len(keep) < max_detections:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        inter_w = (np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest])).clip(0)
        inter_h = (np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest])).clip(0)
        inter = inter_w * inter_h
        iou = inter / np.maximum(areas[best] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


class YoloPipeline:
    """Letterbox pre-processing and decode + NMS post-processing for one model's settings."""

    def __init__(
        self,
        labels: Sequence[str],
        input_size: int = 640,
        confidence: float = 0.25,
        iou: float = 0.45,
        classes: Sequence[str] | None = None,
    ) -> None:
        self.labels = tuple(labels)
        self.input_size = input_size
        self.confidence = confidence
        self.iou = iou
        self.class_ids = None if classes is None else self._class_ids(classes)
        self._warned_class_count = False

    def _class_ids(self, classes: Sequence[str]) -> np.ndarray:
        unknown = [name for name in classes if name not in self.labels]
        if unknown:
            raise DetectorConfigError(f"unknown class names {unknown}; check --classes/--labels")
        return np.array(sorted({self.labels.index(name) for name in classes}), dtype=np.int64)

    def preprocess(self, frame: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """Return the model input tensor for `frame` and the letterbox to undo afterwards."""
        image, box = letterbox(frame, self.input_size)
        return to_blob(image), box

    def postprocess(self, output: np.ndarray, box: Letterbox) -> list[Detection]:
        """Turn raw model output into detections in the original frame's pixels."""
        self._check_class_count(output.shape[-2] - 4)
        class_ids = self.class_ids
        if class_ids is not None:
            class_ids = class_ids[class_ids < output.shape[-2] - 4]
            if class_ids.size == 0:
                return []  # the model cannot output any of the wanted classes
        boxes, scores, labels = decode(output, self.confidence, class_ids)
        keep = nms(boxes, scores, labels, self.iou)
        frame_boxes = box.to_frame(boxes[keep])
        detections = []
        for (x1, y1, x2, y2), score, label in zip(
            frame_boxes, scores[keep], labels[keep], strict=True
        ):
            if x2 <= x1 or y2 <= y1:
                continue  # box lay entirely in the padding
            detections.append(
                Detection(
                    label=self._label(int(label)),
                    confidence=float(score),
                    box=(float(x1), float(y1), float(x2), float(y2)),
                )
            )
        return detections

    def _label(self, class_id: int) -> str:
        return self.labels[class_id] if class_id < len(self.labels) else f"class{class_id}"

    def _check_class_count(self, model_classes: int) -> None:
        if model_classes != len(self.labels) and not self._warned_class_count:
            self._warned_class_count = True
            logger.warning(
                "model outputs %d classes but %d labels are loaded; pass --labels",
                model_classes,
                len(self.labels),
            )


class YoloDetector(Detector):
    """A detector running a YOLO-layout model: backends supply only `infer`."""

    def __init__(self, pipeline: YoloPipeline) -> None:
        self.pipeline = pipeline

    @abc.abstractmethod
    def infer(self, blob: np.ndarray) -> np.ndarray:
        """Run the model on a `[1, 3, S, S]` float32 input; return `[1, 4+nc, anchors]` float32."""

    def detect(self, frame: np.ndarray) -> list[Detection]:
        blob, box = self.pipeline.preprocess(frame)
        return self.pipeline.postprocess(self.infer(blob), box)

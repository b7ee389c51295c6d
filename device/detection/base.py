"""Detector interface shared by every backend: BGR frame in, detections in frame pixels out."""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


class DetectorConfigError(ValueError):
    """The detector settings cannot work together (bad backend/model combination, missing file)."""


class DetectorUnavailableError(RuntimeError):
    """The backend's runtime (torch, TensorRT, a CUDA GPU) is not installed on this machine."""


@dataclass(frozen=True)
class Detection:
    """One object found in a frame; `box` is pixel xyxy in the original frame."""

    label: str
    confidence: float
    box: tuple[float, float, float, float]

    def to_dict(self) -> dict[str, Any]:
        """Return the uploaded form: `{label, confidence, box: [x1, y1, x2, y2]}`."""
        return {"label": self.label, "confidence": self.confidence, "box": list(self.box)}


class Detector(abc.ABC):
    """A backend that turns one BGR frame into detections.

    Instances hold model state and buffers that are not safe to share: call `detect` from one
    thread (the agent's capture worker), and `close` once when done.
    """

    name: str = ""

    @abc.abstractmethod
    def detect(self, frame: np.ndarray) -> list[Detection]:
        """Return the objects found in `frame` (HxWx3 uint8 BGR), boxes in its pixels."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing to release
        """Release models and device memory; the detector must not be used afterwards."""

    def __enter__(self) -> Detector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class NullDetector(Detector):
    """Detection switched off: every frame yields nothing."""

    name = "none"

    def detect(self, frame: np.ndarray) -> list[Detection]:
        return []

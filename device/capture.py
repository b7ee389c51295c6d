"""One capture: grab a frame, run the detector, encode JPEG; timings for the log line."""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from device.camera import Camera
from device.detection import Detector, NullDetector
from device.files import write_atomic

logger = logging.getLogger(__name__)
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_-]")

JPEG_QUALITY = 90


@dataclass
class CaptureResult:
    """An encoded frame with what the detector found and how long each step took."""

    jpeg: bytes
    width: int
    height: int
    captured_at: datetime
    detections: list[dict[str, Any]]
    timings_ms: dict[str, float] = field(default_factory=dict)


def encode_jpeg(frame: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    ok, buffer = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buffer.tobytes()


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 1)


class CapturePipeline:
    """Camera + detector + encoder. Blocking; called through ``run_blocking``.

    ``detector`` is swapped by a config command between captures.
    """

    def __init__(self, camera: Camera, detector: Detector, save_dir: Path | None = None) -> None:
        self.camera = camera
        self.detector = detector
        self.save_dir = save_dir
        # For health reports: when the last frame came, the last inference time, the last
        # camera error (None once a frame came again).
        self.last_frame_at: float | None = None  # time.time()
        self.last_inference_ms: float | None = None
        self.camera_error: str | None = None
        # Held while a detector runs, so a config change never closes one mid-inference.
        self._detector_lock = threading.Lock()
        if save_dir is not None:
            save_dir.mkdir(parents=True, exist_ok=True)

    @property
    def detecting(self) -> bool:
        return not isinstance(self.detector, NullDetector)

    def grab_and_detect(self, warmup: int | None = None) -> tuple[np.ndarray, list[Any], dict]:
        """Return a fresh frame, its detections and the grab/detect timings."""
        start = time.perf_counter()
        try:
            frame = self.camera.grab(warmup)
        except Exception as exc:
            self.camera_error = str(exc)[:300]
            raise
        self.camera_error = None
        self.last_frame_at = time.time()
        timings = {"grab": _ms_since(start)}
        start = time.perf_counter()
        with self._detector_lock:
            detections = self.detector.detect(frame)
        timings["detect"] = self.last_inference_ms = _ms_since(start)
        return frame, detections, timings

    def swap_detector(self, detector: Detector) -> None:
        """Use ``detector`` from the next frame on and release the previous one."""
        with self._detector_lock:
            previous, self.detector = self.detector, detector
        previous.close()

    def capture(self, tag: str) -> CaptureResult:
        """Take one capture; raise CameraError when no frame can be had."""
        frame, detections, timings = self.grab_and_detect()
        captured_at = datetime.now(timezone.utc)
        return self.finish(frame, detections, timings, captured_at, tag)

    def finish(
        self,
        frame: np.ndarray,
        detections: list[Any],
        timings: dict[str, float],
        captured_at: datetime,
        tag: str,
    ) -> CaptureResult:
        """Encode a grabbed frame (and save it with ``--save-frames``)."""
        start = time.perf_counter()
        jpeg = encode_jpeg(frame)
        timings["encode"] = _ms_since(start)
        if self.save_dir is not None:
            # The tag may be a server-sent trigger id: only safe characters reach a file name.
            safe_tag = _UNSAFE_NAME.sub("_", tag)[:64] or "capture"
            path = self.save_dir / f"{captured_at:%Y%m%d_%H%M%S_%f}_{safe_tag}.jpg"
            try:
                write_atomic(path, jpeg)
            except OSError as exc:  # a full debug disk must not cost the capture
                logger.warning("could not save frame to %s: %s", path, exc)
        return CaptureResult(
            jpeg=jpeg,
            width=int(frame.shape[1]),
            height=int(frame.shape[0]),
            captured_at=captured_at,
            detections=[d.to_dict() for d in detections],
            timings_ms=timings,
        )

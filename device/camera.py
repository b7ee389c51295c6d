"""Camera sources: webcam index, image file, video file (looped), RTSP/HTTP URL."""

from __future__ import annotations

import enum
import logging
import os
import threading
from dataclasses import dataclass

import cv2
import numpy as np

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")
BACKENDS = {
    "any": cv2.CAP_ANY,
    "dshow": cv2.CAP_DSHOW,
    "msmf": cv2.CAP_MSMF,
    "v4l2": cv2.CAP_V4L2,
    "gstreamer": cv2.CAP_GSTREAMER,
    "ffmpeg": cv2.CAP_FFMPEG,
    "avfoundation": cv2.CAP_AVFOUNDATION,
}


class SourceKind(enum.Enum):
    WEBCAM = "webcam"
    IMAGE = "image"
    VIDEO = "video"
    STREAM = "stream"


class CameraError(RuntimeError):
    """The camera could not deliver a frame; the message says why."""


@dataclass(frozen=True)
class CameraSettings:
    """What the camera should deliver; the cloud config may change resolution and warmup."""

    resolution: tuple[int, int] | None = None  # (width, height)
    warmup: int = 2  # frames discarded before each capture


def parse_resolution(text: str) -> tuple[int, int]:
    """Parse ``WIDTHxHEIGHT`` (e.g. ``1920x1080``); raise ValueError otherwise."""
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise ValueError(f"resolution must look like 1920x1080, got {text!r}")
    size = (int(width), int(height))
    if min(size) < 1 or max(size) > 16384:
        raise ValueError(f"resolution out of range: {text!r}")
    return size


def classify_source(source: str) -> SourceKind:
    """Tell which kind of source a ``--camera-source`` value names."""
    if source.isdigit():
        return SourceKind.WEBCAM
    if source.lower().startswith(URL_SCHEMES):
        return SourceKind.STREAM
    if source.lower().endswith(IMAGE_SUFFIXES):
        return SourceKind.IMAGE
    return SourceKind.VIDEO


class Camera:
    """One camera, opened once and re-opened after a failed read.

    Every method blocks (OpenCV I/O); the agent calls them through ``run_blocking``. A lock
    serialises triggered captures and the watch loop, which share the device.
    """

    def __init__(self, source: str, backend: str | None, settings: CameraSettings) -> None:
        self.source = source
        self.kind = classify_source(source)
        self._backend = BACKENDS[backend] if backend else cv2.CAP_ANY
        self._settings = settings
        self._capture: cv2.VideoCapture | None = None
        self._lock = threading.Lock()

    @property
    def settings(self) -> CameraSettings:
        return self._settings

    def reconfigure(self, settings: CameraSettings) -> None:
        """Use new settings from the next grab on (a resolution change re-opens the device)."""
        with self._lock:
            if settings.resolution != self._settings.resolution:
                self._release()
            self._settings = settings

    def open(self) -> None:
        """Open the source now; raise CameraError if it cannot deliver a frame."""
        with self._lock:
            self._read(warmup=0)

    def grab(self, warmup: int | None = None) -> np.ndarray:
        """Return a fresh BGR frame, discarding ``warmup`` buffered frames first."""
        with self._lock:
            count = self._settings.warmup if warmup is None else warmup
            try:
                return self._read(count)
            except CameraError as exc:
                # A dropped RTSP session or unplugged webcam: re-open once before giving up.
                logger.warning("camera read failed (%s); re-opening %s", exc, self.source)
                self._release()
                return self._read(count)

    def close(self) -> None:
        with self._lock:
            self._release()

    def _read(self, warmup: int) -> np.ndarray:
        if self.kind is SourceKind.IMAGE:
            frame = self._read_image()
        else:
            frame = self._read_capture(warmup)
        return self._resize(frame)

    def _read_image(self) -> np.ndarray:
        # Re-read each time: the file is the "scene" and may be replaced between captures.
        if not os.path.isfile(self.source):
            raise CameraError(f"image file not found: {self.source}")
        frame = cv2.imread(self.source, cv2.IMREAD_COLOR)
        if frame is None:
            raise CameraError(f"cannot decode image file: {self.source}")
        return frame

    def _read_capture(self, warmup: int) -> np.ndarray:
        capture = self._ensure_open()
        for _ in range(max(0, warmup)):
            # Buffered frames may be seconds old; a capture must show the scene now.
            if not capture.grab():
                break
        ok, frame = capture.read()
        if (not ok or frame is None) and self.kind is SourceKind.VIDEO:
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)  # end of file: loop
            ok, frame = capture.read()
        if not ok or frame is None:
            raise CameraError(f"no frame from {self.kind.value} source {self.source}")
        return frame

    def _ensure_open(self) -> cv2.VideoCapture:
        if self._capture is not None and self._capture.isOpened():
            return self._capture
        if self.kind is SourceKind.VIDEO and not os.path.isfile(self.source):
            raise CameraError(f"video file not found: {self.source}")
        target: int | str = int(self.source) if self.kind is SourceKind.WEBCAM else self.source
        capture = cv2.VideoCapture(target, self._backend)
        if not capture.isOpened():
            capture.release()
            raise CameraError(f"cannot open {self.kind.value} source {self.source}")
        if self.kind is SourceKind.WEBCAM and self._settings.resolution:
            width, height = self._settings.resolution
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        self._capture = capture
        logger.info("camera opened: %s (%s)", self.source, self.kind.value)
        return capture

    def _resize(self, frame: np.ndarray) -> np.ndarray:
        # Files and streams cannot be asked for a resolution, and webcams may ignore it:
        # scale so the configured resolution is what the cloud receives.
        resolution = self._settings.resolution
        if resolution and (frame.shape[1], frame.shape[0]) != resolution:
            frame = cv2.resize(frame, resolution, interpolation=cv2.INTER_AREA)
        return frame

    def _release(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

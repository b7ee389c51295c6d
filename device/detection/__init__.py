"""On-device object detection: one interface, backends chosen by flag or model file."""

from __future__ import annotations

from device.detection.base import (
    Detection,
    Detector,
    DetectorConfigError,
    DetectorUnavailableError,
    NullDetector,
)
from device.detection.factory import (
    Backend,
    DetectorSettings,
    add_detector_arguments,
    create_detector,
    detector_settings_from_args,
)

__all__ = [
    "Backend",
    "Detection",
    "Detector",
    "DetectorConfigError",
    "DetectorSettings",
    "DetectorUnavailableError",
    "NullDetector",
    "add_detector_arguments",
    "create_detector",
    "detector_settings_from_args",
]

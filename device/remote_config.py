"""Turn the cloud's device config document into camera and detector settings.

The CLI flags are the baseline; each non-null value in the cloud's ``camera`` and
``detection`` sections overrides its flag. A key the cloud removes falls back to the flag.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from typing import Any

from device.camera import CameraSettings, parse_resolution
from device.detection import DetectorSettings

logger = logging.getLogger(__name__)

MAX_WARMUP = 100  # frames; more would make a capture take seconds


def camera_settings_for(baseline: CameraSettings, config: dict[str, Any]) -> CameraSettings:
    """Apply the ``camera`` section; invalid values are logged and left at the baseline."""
    section = config.get("camera") or {}
    resolution, warmup = baseline.resolution, baseline.warmup
    if section.get("resolution") is not None:
        try:
            resolution = parse_resolution(str(section["resolution"]))
        except ValueError as exc:
            logger.warning("config camera.resolution ignored: %s", exc)
    value = section.get("warmup")
    if value is not None:
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_WARMUP:
            warmup = value
        else:
            logger.warning("config camera.warmup ignored: %r is not 0..%d", value, MAX_WARMUP)
    return CameraSettings(resolution=resolution, warmup=warmup)


def detector_settings_for(baseline: DetectorSettings, config: dict[str, Any]) -> DetectorSettings:
    """Apply the ``detection`` section (detector, confidence, iou, classes)."""
    section = config.get("detection") or {}
    overrides: dict[str, Any] = {}
    if isinstance(section.get("detector"), str):
        overrides["detector"] = section["detector"]
        if section["detector"] in ("none", "opencv"):
            overrides["model"] = None  # these backends take no model file
    for name in ("confidence", "iou"):
        value = section.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            overrides[name] = float(value)
    classes = section.get("classes")
    if isinstance(classes, list) and all(isinstance(item, str) for item in classes):
        overrides["classes"] = list(classes) or None
    return dataclasses.replace(baseline, **overrides)


def reported_config(
    config: dict[str, Any], camera: CameraSettings, detector: DetectorSettings
) -> dict[str, Any]:
    """The config document as actually applied, for the acknowledgement."""
    reported = copy.deepcopy(config)
    resolution = camera.resolution
    reported["camera"] = {
        "resolution": f"{resolution[0]}x{resolution[1]}" if resolution else None,
        "warmup": camera.warmup,
    }
    reported["detection"] = {
        "detector": detector.detector or ("opencv" if detector.model is None else None),
        "confidence": detector.confidence,
        "iou": detector.iou,
        "classes": detector.classes,
    }
    return reported

"""What a device says about an upload: its device, trigger, time, free metadata, detections.

The same model validates the multipart `metadata` part and the JSON body (less the image).
"""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import Field, field_validator

from cloud.core.schema_types import DeviceId, StrictBody, TriggerId, UtcDateTime

MAX_DETECTIONS = 1000
MAX_METADATA_JSON_BYTES = 16 * 1024  # the free-form `metadata` object, as stored
# A device-chosen id for one capture, sent again on every retry: the upload's idempotency key.
CAPTURE_ID_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"


class Detection(StrictBody):
    """One detection: label, confidence 0..1, box `[x1, y1, x2, y2]` in pixels."""

    label: str = Field(min_length=1, max_length=100)
    confidence: float = Field(ge=0, le=1)
    box: list[float] = Field(min_length=4, max_length=4)

    @field_validator("box")
    @classmethod
    def _ordered_finite_box(cls, box: list[float]) -> list[float]:
        if not all(math.isfinite(value) for value in box):
            raise ValueError("box values must be finite")
        x1, y1, x2, y2 = box
        if x1 > x2 or y1 > y2:
            raise ValueError("box must be [x1, y1, x2, y2] with x1 <= x2 and y1 <= y2")
        return box


class CaptureMetadata(StrictBody):
    """An upload's metadata: the multipart `metadata` part, or the JSON body less the image."""

    device_id: DeviceId
    trigger_id: TriggerId | None = None
    capture_id: str | None = Field(default=None, pattern=CAPTURE_ID_PATTERN)
    captured_at: UtcDateTime
    trigger_label: str | None = Field(default=None, max_length=200)
    metadata: dict[str, Any] = Field(default_factory=dict)
    detections: list[Detection] = Field(default_factory=list, max_length=MAX_DETECTIONS)

    @field_validator("metadata")
    @classmethod
    def _bounded_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(value, default=str))
        if size > MAX_METADATA_JSON_BYTES:
            raise ValueError(f"metadata is {size} bytes; the limit is {MAX_METADATA_JSON_BYTES}")
        return value

"""What a device says about an upload: its device, trigger, time, free metadata, detections.

The same model validates the multipart `metadata` part and the JSON body (less the image).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from pydantic import Field, field_validator

from cloud.core.schema_types import DeviceId, StrictBody, TriggerId

MAX_DETECTIONS = 1000


class Detection(StrictBody):
    """One detection: label, confidence 0..1, box `[x1, y1, x2, y2]` in pixels."""

    label: str = Field(min_length=1, max_length=100)
    confidence: float = Field(ge=0, le=1)
    box: list[float] = Field(min_length=4, max_length=4)

    @field_validator("label")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value

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
    captured_at: datetime
    trigger_label: str | None = Field(default=None, max_length=200)
    metadata: dict[str, Any] = Field(default_factory=dict)
    detections: list[Detection] = Field(default_factory=list, max_length=MAX_DETECTIONS)

    @field_validator("metadata")
    @classmethod
    def _storable_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        # PostgreSQL's jsonb refuses NUL characters: a 422 here instead of a failed INSERT.
        if "\\u0000" in json.dumps(value):
            raise ValueError("metadata must not contain NUL characters")
        return value

    @field_validator("trigger_label")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value

    @field_validator("captured_at")
    @classmethod
    def _utc(cls, moment: datetime) -> datetime:
        """Naive timestamps are taken as UTC; every stored time is aware."""
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)

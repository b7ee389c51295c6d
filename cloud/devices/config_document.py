"""The desired-config document of a device (`devices.config`), validated on every write.

Every list and string has a cap and the whole document a size limit (a 422 names the limit):
schedules and rules are evaluated on every tick and every upload, so their cost is bounded
here, where the document enters.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import Field, field_validator, model_validator

from cloud.core.schema_types import StrictBody

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_RESOLUTION = re.compile(r"^\d{2,5}x\d{2,5}$")
MAX_CONFIG_BYTES = 16 * 1024  # the document as stored (compact JSON)
MAX_ACTIVE_HOURS = 14  # windows per schedule (two a day for a week)
MAX_INTERVAL_SECONDS = 366 * 24 * 3600  # one slot a year at the least
MAX_RULES = 32
MAX_LABELS = 32  # labels per rule
MAX_ZONE_POINTS = 64
MAX_CLASSES = 100
MAX_LABEL_LENGTH = 100
Label = Annotated[str, Field(min_length=1, max_length=MAX_LABEL_LENGTH)]


class ActiveHours(StrictBody):
    days: list[Weekday] = Field(
        default_factory=lambda: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], max_length=7
    )
    start: str
    end: str

    @field_validator("start", "end")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise ValueError("must be HH:MM (24-hour)")
        return value


class TriggerSchedule(StrictBody):
    enabled: bool = False
    interval_seconds: int | None = Field(default=None, ge=1, le=MAX_INTERVAL_SECONDS)
    cron: str | None = Field(default=None, max_length=200)
    timezone: str = Field(default="UTC", max_length=64)
    active_hours: list[ActiveHours] | None = Field(default=None, max_length=MAX_ACTIVE_HOURS)

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise ValueError("must be a valid 5-field cron expression")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _one_rule(self) -> TriggerSchedule:
        if self.interval_seconds is not None and self.cron is not None:
            raise ValueError("give interval_seconds or cron, not both")
        if self.enabled and self.interval_seconds is None and self.cron is None:
            raise ValueError("an enabled schedule needs interval_seconds or cron")
        return self


class CameraConfig(StrictBody):
    resolution: str | None = Field(default=None, max_length=11)
    warmup: int | None = Field(default=None, ge=0, le=100)

    @field_validator("resolution")
    @classmethod
    def _resolution(cls, value: str | None) -> str | None:
        if value is not None and not _RESOLUTION.match(value):
            raise ValueError("must be WIDTHxHEIGHT, e.g. 1280x720")
        return value


class DetectionConfig(StrictBody):
    detector: Literal["none", "opencv", "torch", "tensorrt"] | None = None
    confidence: float | None = Field(default=None, ge=0, le=1)
    iou: float | None = Field(default=None, ge=0, le=1)
    classes: list[Label] | None = Field(default=None, max_length=MAX_CLASSES)


Point = Annotated[list[Annotated[float, Field(ge=0, le=1)]], Field(min_length=2, max_length=2)]


class EvaluationRule(StrictBody):
    name: str = Field(min_length=1, max_length=100)
    labels: list[Label] = Field(min_length=1, max_length=MAX_LABELS)
    min_confidence: float = Field(default=0.5, ge=0, le=1)
    zone: list[Point] | None = Field(default=None, min_length=3, max_length=MAX_ZONE_POINTS)


class EvaluationConfig(StrictBody):
    rules: list[EvaluationRule] = Field(default_factory=list, max_length=MAX_RULES)


MIN_OFFLINE_AFTER_SECONDS = 10


class AlertsConfig(StrictBody):
    """When this device raises alerts (docs/alerts.md)."""

    offline_after_seconds: int = Field(default=300, ge=MIN_OFFLINE_AFTER_SECONDS, le=7 * 86400)
    failed_captures: int = Field(default=3, ge=1, le=1000)
    cooldown_seconds: int = Field(default=300, ge=0, le=7 * 86400)


class DeviceConfig(StrictBody):
    trigger: TriggerSchedule | None = None
    camera: CameraConfig | None = None
    detection: DetectionConfig | None = None
    evaluation: EvaluationConfig | None = None
    alerts: AlertsConfig | None = None

    @model_validator(mode="after")
    def _bounded_size(self) -> DeviceConfig:
        size = len(json.dumps(self.model_dump(mode="json", exclude_none=True)))
        if size > MAX_CONFIG_BYTES:
            raise ValueError(f"config document is {size} bytes; the limit is {MAX_CONFIG_BYTES}")
        return self

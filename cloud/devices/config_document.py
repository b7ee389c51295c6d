"""The desired-config document of a device (`devices.config`), validated on every write."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_RESOLUTION = re.compile(r"^\d{2,5}x\d{2,5}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ActiveHours(_Strict):
    days: list[Weekday] = Field(
        default_factory=lambda: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    )
    start: str
    end: str

    @field_validator("start", "end")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise ValueError("must be HH:MM (24-hour)")
        return value


class TriggerSchedule(_Strict):
    enabled: bool = False
    interval_seconds: int | None = Field(default=None, ge=1)
    cron: str | None = None
    timezone: str = "UTC"
    active_hours: list[ActiveHours] | None = None

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


class CameraConfig(_Strict):
    resolution: str | None = None
    warmup: int | None = Field(default=None, ge=0, le=100)

    @field_validator("resolution")
    @classmethod
    def _resolution(cls, value: str | None) -> str | None:
        if value is not None and not _RESOLUTION.match(value):
            raise ValueError("must be WIDTHxHEIGHT, e.g. 1280x720")
        return value


class DetectionConfig(_Strict):
    detector: Literal["none", "opencv", "torch", "tensorrt"] | None = None
    confidence: float | None = Field(default=None, ge=0, le=1)
    iou: float | None = Field(default=None, ge=0, le=1)
    classes: list[str] | None = None


Point = Annotated[list[Annotated[float, Field(ge=0, le=1)]], Field(min_length=2, max_length=2)]


class EvaluationRule(_Strict):
    name: str = Field(min_length=1, max_length=100)
    labels: list[str] = Field(min_length=1)
    min_confidence: float = Field(default=0.5, ge=0, le=1)
    zone: list[Point] | None = Field(default=None, min_length=3)


class EvaluationConfig(_Strict):
    rules: list[EvaluationRule] = Field(default_factory=list)


MIN_OFFLINE_AFTER_SECONDS = 10


class AlertsConfig(_Strict):
    """When this device raises alerts (docs/alerts.md)."""

    offline_after_seconds: int = Field(default=300, ge=MIN_OFFLINE_AFTER_SECONDS, le=7 * 86400)
    failed_captures: int = Field(default=3, ge=1, le=1000)
    cooldown_seconds: int = Field(default=300, ge=0, le=7 * 86400)


class DeviceConfig(_Strict):
    trigger: TriggerSchedule | None = None
    camera: CameraConfig | None = None
    detection: DetectionConfig | None = None
    evaluation: EvaluationConfig | None = None
    alerts: AlertsConfig | None = None

"""Evaluation of a capture's detections against its device's rules (label, confidence, zone)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from cloud.devices.config_document import EvaluationConfig, EvaluationRule


class EvaluationError(Exception):
    """The rules or detections could not be evaluated; the capture's evaluation failed."""


def point_in_polygon(x: float, y: float, polygon: Sequence[Sequence[float]]) -> bool:
    """True when (x, y) is inside the polygon (even-odd ray casting)."""
    inside = False
    count = len(polygon)
    for index in range(count):
        x1, y1 = polygon[index][0], polygon[index][1]
        x2, y2 = polygon[(index + 1) % count][0], polygon[(index + 1) % count][1]
        if (y1 > y) != (y2 > y):
            crossing = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if x < crossing:
                inside = not inside
    return inside


def rules_of(config: dict[str, Any] | None) -> list[EvaluationRule]:
    """The evaluation rules in a device config document; EvaluationError when invalid."""
    section = (config or {}).get("evaluation")
    if section is None:
        return []
    try:
        return EvaluationConfig.model_validate(section).rules
    except ValidationError as exc:
        raise EvaluationError(f"invalid evaluation rules: {exc.error_count()} error(s)") from exc


def _in_zone(
    box: Sequence[float], zone: Sequence[Sequence[float]], width: int, height: int
) -> bool:
    """A detection is in the zone when its bottom-centre point (normalized) is."""
    x1, _, x2, y2 = box
    return point_in_polygon((x1 + x2) / 2 / width, y2 / height, zone)


def _matches(
    rule: EvaluationRule, detections: Sequence[dict[str, Any]], width: int, height: int
) -> list[int]:
    labels = set(rule.labels)
    return [
        index
        for index, detection in enumerate(detections)
        if detection["label"] in labels
        and detection["confidence"] >= rule.min_confidence
        and (rule.zone is None or _in_zone(detection["box"], rule.zone, width, height))
    ]


def evaluate(
    config: dict[str, Any] | None,
    detections: Sequence[dict[str, Any]],
    width: int,
    height: int,
    now: datetime | None = None,
) -> dict[str, Any]:
    """`{"alert", "matched_rules", "evaluated_at"}`: alert when any rule matched a detection."""
    if width <= 0 or height <= 0:
        raise EvaluationError("image size unknown: zones cannot be evaluated")
    matched = []
    for rule in rules_of(config):
        try:
            indexes = _matches(rule, detections, width, height)
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
            raise EvaluationError(f"rule {rule.name!r}: {type(exc).__name__}") from exc
        if indexes:
            matched.append({"name": rule.name, "detections": indexes})
    return {
        "alert": bool(matched),
        "matched_rules": matched,
        "evaluated_at": (now or datetime.now(UTC)).isoformat(),
    }

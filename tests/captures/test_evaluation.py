"""Rule evaluation: labels, confidence, zones by the detection's bottom-centre point."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cloud.captures.evaluation import EvaluationError, evaluate, point_in_polygon

SQUARE = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
LEFT_HALF = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _config(*rules: dict) -> dict:
    return {"evaluation": {"rules": list(rules)}}


def _person(box: list[float], confidence: float = 0.9) -> dict:
    return {"label": "person", "confidence": confidence, "box": box}


def test_point_in_polygon_concave_shape() -> None:
    l_shape = [[0, 0], [1, 0], [1, 0.2], [0.2, 0.2], [0.2, 1], [0, 1]]
    assert point_in_polygon(0.1, 0.9, l_shape)
    assert point_in_polygon(0.9, 0.1, l_shape)
    assert not point_in_polygon(0.5, 0.5, l_shape)
    assert not point_in_polygon(1.5, 0.1, SQUARE)


def test_label_and_confidence_rule() -> None:
    config = _config({"name": "people", "labels": ["person"], "min_confidence": 0.5})
    detections = [
        _person([0, 0, 10, 10], 0.4),
        {"label": "car", "confidence": 0.99, "box": [0, 0, 5, 5]},
        _person([0, 0, 10, 10], 0.5),
    ]
    result = evaluate(config, detections, 100, 100, NOW)
    assert result == {
        "alert": True,
        "matched_rules": [{"name": "people", "detections": [2]}],
        "evaluated_at": NOW.isoformat(),
    }


def test_zone_uses_bottom_centre_not_box_overlap() -> None:
    config = _config({"name": "left", "labels": ["person"], "zone": LEFT_HALF})
    # Box mostly in the left half but its bottom-centre (x=55 of 100) is right of it.
    straddling = _person([20, 10, 90, 80])
    # Box mostly right, bottom-centre x=45: in the zone.
    leaning = _person([0, 10, 90, 80])
    assert evaluate(config, [straddling], 100, 100, NOW)["alert"] is False
    assert evaluate(config, [leaning], 100, 100, NOW)["matched_rules"] == [
        {"name": "left", "detections": [0]}
    ]


def test_zone_is_normalized_by_image_size() -> None:
    bottom_right = [[0.5, 0.5], [1, 0.5], [1, 1], [0.5, 1]]
    config = _config({"name": "corner", "labels": ["person"], "zone": bottom_right})
    detection = _person([600, 300, 700, 400])  # bottom-centre (650, 400) of 1000x500
    assert evaluate(config, [detection], 1000, 500, NOW)["alert"] is True
    assert evaluate(config, [detection], 2000, 1000, NOW)["alert"] is False


def test_no_rules_or_no_detections_is_no_alert() -> None:
    assert evaluate({}, [_person([0, 0, 1, 1])], 10, 10, NOW)["alert"] is False
    config = _config({"name": "people", "labels": ["person"]})
    assert evaluate(config, [], 10, 10, NOW) == {
        "alert": False,
        "matched_rules": [],
        "evaluated_at": NOW.isoformat(),
    }


def test_several_rules_each_report_their_matches() -> None:
    config = _config(
        {"name": "people", "labels": ["person"]},
        {"name": "vehicles", "labels": ["car", "truck"], "min_confidence": 0.8},
    )
    detections = [
        {"label": "truck", "confidence": 0.85, "box": [0, 0, 1, 1]},
        _person([0, 0, 1, 1]),
    ]
    result = evaluate(config, detections, 10, 10, NOW)
    assert result["matched_rules"] == [
        {"name": "people", "detections": [1]},
        {"name": "vehicles", "detections": [0]},
    ]


def test_invalid_stored_rules_fail_evaluation() -> None:
    with pytest.raises(EvaluationError):
        evaluate(_config({"name": "x", "labels": "person", "zone": [[0, 0]]}), [], 10, 10)

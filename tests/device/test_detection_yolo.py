"""The shared YOLO letterbox, decode and NMS, checked on CPU against hand-made tensors."""

from __future__ import annotations

import numpy as np
import pytest

from device.detection import Detection, DetectorConfigError
from device.detection.yolo import (
    PAD_VALUE,
    Letterbox,
    YoloPipeline,
    decode,
    letterbox,
    nms,
    to_blob,
)

LABELS = ("person", "car", "dog")


def yolo_output(*anchors: tuple[float, float, float, float, float, float, float]) -> np.ndarray:
    """Build a `[1, 4+3, anchors]` output from rows of (cx, cy, w, h, person, car, dog)."""
    return np.asarray(anchors, dtype=np.float32).T[None]


@pytest.mark.parametrize(
    ("width", "height", "scale", "pad_x", "pad_y"),
    [
        (1280, 720, 0.5, 0, 140),  # landscape: bars above and below
        (480, 640, 1.0, 80, 0),  # portrait: bars left and right
        (300, 500, 1.28, 128, 0),  # upscaled portrait
        (640, 640, 1.0, 0, 0),
    ],
)
def test_letterbox_keeps_aspect_and_centres_frame(width, height, scale, pad_x, pad_y) -> None:
    frame = np.zeros((height, width, 3), dtype=np.uint8)

    image, box = letterbox(frame, 640)

    assert image.shape == (640, 640, 3)
    assert box == Letterbox(scale, pad_x, pad_y, width, height)
    if pad_y:
        assert (image[: pad_y - 1] == PAD_VALUE).all()
        assert (image[640 - pad_y + 1 :] == PAD_VALUE).all()
    if pad_x:
        assert (image[:, : pad_x - 1] == PAD_VALUE).all()
        assert (image[:, 640 - pad_x + 1 :] == PAD_VALUE).all()
    assert (image[pad_y + 1 : 640 - pad_y - 1, pad_x + 1 : 640 - pad_x - 1] == 0).all()


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (720, 1280), (333, 517), (640, 640)])
def test_letterbox_boxes_round_trip_to_frame_pixels(width, height) -> None:
    rng = np.random.default_rng(7)
    corners = rng.uniform(0, 1, size=(50, 2, 2)) * [width, height]
    boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)
    _, box = letterbox(np.zeros((height, width, 3), dtype=np.uint8), 640)

    round_trip = box.to_frame(box.to_model(boxes))

    np.testing.assert_allclose(round_trip, boxes, atol=1e-3)


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (720, 1280)])
def test_letterbox_places_frame_content_where_to_model_says(width, height) -> None:
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    frame[100:300, 200:500] = 255  # xyxy (200, 100, 500, 300)
    image, box = letterbox(frame, 640)

    ys, xs = np.nonzero(image[:, :, 0] > 128)
    found = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)

    expected = box.to_model(np.array([[200, 100, 500, 300]]))[0]
    np.testing.assert_allclose(found, expected, atol=1.0)


def test_blob_is_nchw_rgb_float_in_unit_range() -> None:
    image = np.zeros((4, 6, 3), dtype=np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 10, 20, 255  # B, G, R

    blob = to_blob(image)

    assert blob.shape == (1, 3, 4, 6) and blob.dtype == np.float32
    np.testing.assert_allclose(blob[0, :, 0, 0], [1.0, 20 / 255, 10 / 255], rtol=1e-6)


def test_decode_converts_centre_boxes_and_filters_by_best_class_score() -> None:
    output = yolo_output(
        (100, 50, 20, 10, 0.9, 0.1, 0.0),
        (300, 200, 40, 80, 0.1, 0.2, 0.3),  # best score 0.3 passes
        (10, 10, 4, 4, 0.2, 0.1, 0.0),  # best score 0.2 is below threshold
    )

    boxes, scores, classes = decode(output, confidence=0.25)

    np.testing.assert_allclose(boxes, [[90, 45, 110, 55], [280, 160, 320, 240]])
    np.testing.assert_allclose(scores, [0.9, 0.3], rtol=1e-6)
    assert classes.tolist() == [0, 2]


def test_decode_with_class_filter_picks_best_allowed_class() -> None:
    output = yolo_output((100, 50, 20, 10, 0.9, 0.5, 0.0))

    _, scores, classes = decode(output, confidence=0.25, class_ids=np.array([1, 2]))

    assert classes.tolist() == [1]
    np.testing.assert_allclose(scores, [0.5])


def test_decode_rejects_outputs_not_in_yolo_layout() -> None:
    with pytest.raises(ValueError, match="4\\+classes"):
        decode(np.zeros((1, 3, 10), dtype=np.float32), 0.25)


def test_nms_suppresses_overlaps_within_a_class_only() -> None:
    boxes = np.array(
        [[0, 0, 100, 100], [5, 5, 105, 105], [0, 0, 100, 100], [200, 200, 250, 250]],
        dtype=np.float32,
    )
    scores = np.array([0.8, 0.9, 0.7, 0.5], dtype=np.float32)
    classes = np.array([0, 0, 1, 0])

    keep = nms(boxes, scores, classes, iou_threshold=0.45)

    assert keep.tolist() == [1, 2, 3]


def test_nms_keeps_one_of_many_identical_boxes() -> None:
    boxes = np.tile(np.array([[10, 10, 50, 50]], dtype=np.float32), (1000, 1))
    scores = np.linspace(0.3, 0.9, 1000, dtype=np.float32)

    keep = nms(boxes, scores, np.zeros(1000, dtype=np.int64), iou_threshold=0.45)

    assert keep.tolist() == [999]


def test_nms_of_nothing_is_nothing() -> None:
    empty = np.zeros((0, 4), dtype=np.float32)
    assert nms(empty, np.zeros(0), np.zeros(0, dtype=np.int64), 0.45).size == 0


def pipeline(**kwargs) -> YoloPipeline:
    return YoloPipeline(LABELS, input_size=640, **kwargs)


def test_pipeline_maps_boxes_back_to_a_landscape_frame() -> None:
    yolo = pipeline()
    _, box = yolo.preprocess(np.zeros((720, 1280, 3), dtype=np.uint8))  # scale 0.5, pad_y 140
    output = yolo_output(
        (200, 290, 200, 100, 0.1, 0.8, 0.0),  # model xyxy (100, 240, 300, 340)
        (205, 292, 200, 100, 0.1, 0.7, 0.0),  # same car, lower score: suppressed
        (205, 292, 200, 100, 0.6, 0.0, 0.0),  # a person in the same place is kept
    )

    detections = yolo.postprocess(output, box)

    assert detections == [
        Detection("car", pytest.approx(0.8), (200.0, 200.0, 600.0, 400.0)),
        Detection("person", pytest.approx(0.6), (210.0, 204.0, 610.0, 404.0)),
    ]


def test_pipeline_maps_boxes_back_to_a_portrait_frame() -> None:
    yolo = pipeline()
    _, box = yolo.preprocess(np.zeros((1280, 720, 3), dtype=np.uint8))  # scale 0.5, pad_x 140

    [detection] = yolo.postprocess(yolo_output((290, 200, 100, 200, 0.0, 0.0, 0.5)), box)

    assert detection.label == "dog"
    assert detection.box == pytest.approx((200.0, 200.0, 400.0, 600.0))


def test_pipeline_clips_boxes_that_cross_the_frame_border() -> None:
    yolo = pipeline()
    _, box = yolo.preprocess(np.zeros((720, 1280, 3), dtype=np.uint8))
    # Spills into the top padding and past the right edge of the model input.
    [detection] = yolo.postprocess(yolo_output((600, 160, 100, 80, 0.9, 0.0, 0.0)), box)

    assert detection.box == pytest.approx((1100.0, 0.0, 1280.0, 120.0))


def test_pipeline_drops_boxes_lying_entirely_in_the_padding() -> None:
    yolo = pipeline()
    _, box = yolo.preprocess(np.zeros((720, 1280, 3), dtype=np.uint8))

    assert yolo.postprocess(yolo_output((320, 50, 100, 60, 0.9, 0.0, 0.0)), box) == []


def test_pipeline_returns_nothing_when_no_score_passes() -> None:
    yolo = pipeline(confidence=0.5)
    _, box = yolo.preprocess(np.zeros((480, 640, 3), dtype=np.uint8))
    output = yolo_output((100, 100, 10, 10, 0.49, 0.3, 0.2), (200, 200, 10, 10, 0.0, 0.0, 0.0))

    assert yolo.postprocess(output, box) == []


def test_pipeline_reports_only_requested_classes() -> None:
    yolo = pipeline(classes=["dog"])
    _, box = yolo.preprocess(np.zeros((640, 640, 3), dtype=np.uint8))
    output = yolo_output((100, 100, 10, 10, 0.9, 0.0, 0.0), (300, 300, 10, 10, 0.9, 0.0, 0.4))

    assert [d.label for d in yolo.postprocess(output, box)] == ["dog"]


def test_pipeline_finds_nothing_when_wanted_classes_are_beyond_the_model() -> None:
    yolo = pipeline(classes=["dog"])  # labels know "dog" (id 2); this model has one class
    _, box = yolo.preprocess(np.zeros((640, 640, 3), dtype=np.uint8))
    output = np.array([[[100.0], [100.0], [10.0], [10.0], [0.9]]], dtype=np.float32)

    assert yolo.postprocess(output, box) == []


def test_pipeline_rejects_unknown_class_names() -> None:
    with pytest.raises(DetectorConfigError, match="unicorn"):
        pipeline(classes=["person", "unicorn"])


def test_pipeline_names_classes_beyond_the_label_list() -> None:
    yolo = YoloPipeline(("person",))
    _, box = yolo.preprocess(np.zeros((640, 640, 3), dtype=np.uint8))

    [detection] = yolo.postprocess(yolo_output((100, 100, 10, 10, 0.0, 0.0, 0.9)), box)

    assert detection.label == "class2"


def test_detection_serialises_to_label_confidence_and_box_list() -> None:
    detection = Detection("person", 0.5, (1.0, 2.0, 3.0, 4.0))

    assert detection.to_dict() == {
        "label": "person",
        "confidence": 0.5,
        "box": [1.0, 2.0, 3.0, 4.0],
    }

"""The torch backend runs a tiny YOLO-layout TorchScript model through the shared pipeline.

The model's class scores are the mean red and blue of its input, so the tests also pin the
BGR->RGB swap and the letterbox padding; its boxes are fixed anchors in model pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device.detection import DetectorSettings, create_detector
from device.detection.torch_backend import TorchDetector
from device.detection.yolo import YoloPipeline

torch = pytest.importorskip("torch", reason="torch backend tests need PyTorch (requirements-dev)")

# TorchScript and the TorchScript-based ONNX exporter are deprecated in torch 2.13 but are what
# JetPack's torch and TensorRT's ONNX parser take today.
pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.onnx.*"),
    pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export"),
]

# cx, cy, w, h in 640x640 model pixels, and how strongly each anchor responds to its colour.
ANCHORS = np.array(
    [
        [320, 320, 200, 100],  # model xyxy (220, 270, 420, 370)
        [330, 325, 200, 100],  # overlaps the first: NMS removes it
        [100, 300, 50, 50],  # model xyxy (75, 275, 125, 325)
        [500, 500, 40, 40],  # weak: below the confidence threshold
    ],
    dtype=np.float32,
).T
WEIGHTS = np.array([0.9, 0.8, 0.6, 0.1], dtype=np.float32)
LABELS = ("red", "blue")
PAD = 114 / 255


class TinyYolo(torch.nn.Module):
    """Outputs `[N, 4 + 2, anchors]`: fixed boxes, scores = mean R / mean B x anchor weight."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("anchors", torch.from_numpy(ANCHORS))
        self.register_buffer("weights", torch.from_numpy(WEIGHTS))
        self.pool = torch.nn.AdaptiveAvgPool2d(1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        colour = self.pool(images).flatten(1)[:, [0, 2]]  # [N, 2]: mean R, mean B
        scores = colour[:, :, None] * self.weights.to(images.dtype)
        boxes = self.anchors.to(images.dtype)[None].expand(images.shape[0], -1, -1)
        return torch.cat([boxes, scores], dim=1)


def export_torchscript(path: Path) -> Path:
    torch.jit.script(TinyYolo().eval()).save(str(path))
    return path


def export_onnx(path: Path) -> Path:
    """Export TinyYolo the way YOLO models ship: input `images`, output `output0`."""
    pytest.importorskip("onnx", reason="torch.onnx.export needs the onnx package")
    torch.onnx.export(
        TinyYolo().eval(),
        (torch.zeros(1, 3, 640, 640),),
        str(path),
        input_names=["images"],
        output_names=["output0"],
        dynamo=False,
    )
    return path


def labels_file(tmp_path: Path) -> str:
    path = tmp_path / "labels.txt"
    path.write_text("\n".join(LABELS), encoding="utf-8")
    return str(path)


@pytest.fixture
def detector(tmp_path):
    model = export_torchscript(tmp_path / "tiny.torchscript")
    settings = DetectorSettings(model=str(model), labels_file=labels_file(tmp_path))
    with create_detector(settings) as detector:
        yield detector


def coloured_frame(bgr: tuple[int, int, int], width: int = 1280, height: int = 720) -> np.ndarray:
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[:] = bgr
    return frame


def test_auto_settings_pick_torch_for_a_torchscript_file(detector) -> None:
    assert isinstance(detector, TorchDetector) and detector.name == "torch"
    assert detector.device.type == "cpu"


def test_red_frame_yields_red_boxes_in_frame_pixels(detector) -> None:
    # 1280x720 -> scale 0.5, 140 px grey bars above and below: mean red over the input is
    # (360 rows of 1.0 + 280 rows of grey) / 640.
    mean_red = (360 + 280 * PAD) / 640

    detections = detector.detect(coloured_frame((0, 0, 255)))

    assert [d.label for d in detections] == ["red", "red"]
    assert detections[0].box == pytest.approx((440.0, 260.0, 840.0, 460.0), abs=1e-3)
    assert detections[1].box == pytest.approx((150.0, 270.0, 250.0, 370.0), abs=1e-3)
    assert detections[0].confidence == pytest.approx(0.9 * mean_red, abs=1e-3)
    assert detections[1].confidence == pytest.approx(0.6 * mean_red, abs=1e-3)


def test_blue_frame_yields_blue_boxes(detector) -> None:
    detections = detector.detect(coloured_frame((255, 0, 0)))

    assert [d.label for d in detections] == ["blue", "blue"]


def test_black_frame_yields_nothing(detector) -> None:
    # Only the grey bars score: 0.9 x 0.196 stays under the 0.25 threshold.
    assert detector.detect(coloured_frame((0, 0, 0))) == []


def test_class_filter_applies_to_model_output(tmp_path) -> None:
    model = export_torchscript(tmp_path / "tiny.torchscript")
    settings = DetectorSettings(
        model=str(model), labels_file=labels_file(tmp_path), classes=["blue"]
    )

    with create_detector(settings) as detector:
        assert detector.detect(coloured_frame((0, 0, 255))) == []


def test_a_plain_checkpoint_is_refused_with_export_advice(tmp_path) -> None:
    checkpoint = tmp_path / "yolo11n.pt"
    torch.save({"model": "weights"}, checkpoint)

    with pytest.raises(ValueError, match="not a TorchScript model; export it"):
        create_detector(DetectorSettings(model=str(checkpoint)))


def test_onnx_export_matches_torchscript_output(tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime", reason="cross-checking ONNX needs onnxruntime")
    onnx_model = export_onnx(tmp_path / "tiny.onnx")
    blob, _ = YoloPipeline(LABELS).preprocess(coloured_frame((30, 60, 200)))
    session = ort.InferenceSession(str(onnx_model), providers=["CPUExecutionProvider"])

    [from_onnx] = session.run(["output0"], {"images": blob})
    with torch.inference_mode():
        from_torch = TinyYolo().eval()(torch.from_numpy(blob)).numpy()

    assert from_onnx.shape == (1, 6, 4)
    # Pooling sums in a different order: scores agree to ~2e-4, boxes exactly.
    np.testing.assert_allclose(from_onnx, from_torch, rtol=0, atol=1e-3)

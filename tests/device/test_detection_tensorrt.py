"""TensorRT backend: engine cache naming on any machine; inference only where a GPU is."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import pytest

from device.detection import DetectorSettings, create_detector
from device.detection.tensorrt_backend import engine_cache_path, fixed_input_shape

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


needs_gpu = pytest.mark.skipif(
    not (HAS_TENSORRT and cuda_available()),
    reason="TensorRT inference needs the tensorrt package and a CUDA GPU (Jetson / GPU host)",
)


def test_engine_cache_name_keys_gpu_tensorrt_version_and_model_bytes(tmp_path) -> None:
    model = tmp_path / "yolo11n.onnx"
    model.write_bytes(b"first export")

    first = engine_cache_path(model, "Orin (nvgpu)", "10.3.0")
    model.write_bytes(b"second export")
    second = engine_cache_path(model, "Orin (nvgpu)", "10.3.0")

    assert first.parent == tmp_path
    assert first.name.startswith("yolo11n.orin-nvgpu.trt10.3.0.") and first.suffix == ".engine"
    assert first != second
    assert engine_cache_path(model, "NVIDIA H100", "10.3.0") != second
    assert engine_cache_path(model, "Orin (nvgpu)", "10.7.0") != second


def test_dynamic_input_dims_become_batch_one_at_the_configured_size() -> None:
    assert fixed_input_shape((-1, 3, -1, -1), 640) == (1, 3, 640, 640)
    assert fixed_input_shape((1, 3, 320, 320), 640) == (1, 3, 320, 320)


@needs_gpu
def test_tensorrt_matches_torch_and_reuses_its_cached_engine(tmp_path, caplog) -> None:
    from tests.device.test_detection_torch import export_onnx, export_torchscript, labels_file

    onnx_model = export_onnx(tmp_path / "tiny.onnx")
    torchscript = export_torchscript(tmp_path / "tiny.torchscript")
    labels = labels_file(tmp_path)
    frame = np.zeros((720, 1280, 3), dtype=np.uint8)
    frame[:] = (40, 10, 230)

    with create_detector(DetectorSettings(model=str(torchscript), labels_file=labels)) as ref:
        expected = ref.detect(frame)
    with create_detector(DetectorSettings(model=str(onnx_model), labels_file=labels)) as trt:
        assert trt.name == "tensorrt"
        got = trt.detect(frame)
    engines = list(Path(tmp_path).glob("tiny.*.engine"))

    assert len(expected) == 2
    assert [d.label for d in got] == [d.label for d in expected]
    for mine, theirs in zip(got, expected, strict=True):
        assert mine.box == pytest.approx(theirs.box, abs=1.0)
        assert mine.confidence == pytest.approx(theirs.confidence, abs=0.01)  # FP16
    assert len(engines) == 1

    caplog.set_level(logging.INFO, logger="device.detection.tensorrt_backend")
    with create_detector(DetectorSettings(model=str(onnx_model), labels_file=labels)) as again:
        assert [d.label for d in again.detect(frame)] == [d.label for d in expected]
    assert "using cached TensorRT engine" in caplog.text

    with create_detector(DetectorSettings(model=str(engines[0]), labels_file=labels)) as prebuilt:
        assert [d.label for d in prebuilt.detect(frame)] == [d.label for d in expected]

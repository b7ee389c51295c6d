"""TensorRT backend: engine cache naming on any machine; inference only where a GPU is."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from device.detection import DetectorConfigError, DetectorSettings, create_detector
from device.detection.tensorrt_backend import (
    engine_cache_path,
    fixed_input_shape,
    load_or_build_engine,
)

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
    assert first.name.startswith("yolo11n.orin-nvgpu.trt10.3.0.640px.")
    assert first.suffix == ".engine"
    assert first != second
    assert engine_cache_path(model, "NVIDIA H100", "10.3.0") != second
    assert engine_cache_path(model, "Orin (nvgpu)", "10.7.0") != second
    assert engine_cache_path(model, "Orin (nvgpu)", "10.3.0", 320) != second


def test_dynamic_input_dims_become_batch_one_at_the_configured_size() -> None:
    assert fixed_input_shape((-1, 3, -1, -1), 640) == (1, 3, 640, 640)
    assert fixed_input_shape((-1, -1, -1, -1), 320) == (1, 3, 320, 320)
    assert fixed_input_shape((1, 3, 320, 320), 640) == (1, 3, 320, 320)


class FakeTensorRT:
    """Just enough of the `tensorrt` builder API to exercise building and caching on a CPU box."""

    __version__ = "10.3.0"
    MemoryPoolType = SimpleNamespace(WORKSPACE="workspace")
    BuilderFlag = SimpleNamespace(FP16="fp16")

    def __init__(self, input_shape=(1, 3, 640, 640), fast_fp16=True, parses=True) -> None:
        self.input = SimpleNamespace(name="images", shape=input_shape)
        self.fast_fp16 = fast_fp16
        self.parses = parses
        self.builds: list[SimpleNamespace] = []

    def Builder(self, _logger):  # noqa: N802 - mirrors tensorrt.Builder
        trt = self

        class Builder:
            platform_has_fast_fp16 = trt.fast_fp16

            def create_network(self, flags):
                return SimpleNamespace(num_inputs=1, get_input=lambda _index: trt.input)

            def create_builder_config(self):
                config = SimpleNamespace(flags=set(), profiles=[], pools={})
                config.set_flag = config.flags.add
                config.add_optimization_profile = config.profiles.append
                config.set_memory_pool_limit = config.pools.__setitem__
                return config

            def create_optimization_profile(self):
                profile = SimpleNamespace(shapes={})
                profile.set_shape = lambda name, *shapes: profile.shapes.__setitem__(name, shapes)
                return profile

            def build_serialized_network(self, network, config):
                trt.builds.append(config)
                return b"engine fp16" if "fp16" in config.flags else b"engine fp32"

        return Builder()

    def OnnxParser(self, network, _logger):  # noqa: N802 - mirrors tensorrt.OnnxParser
        return SimpleNamespace(
            parse=lambda data: self.parses,
            num_errors=0 if self.parses else 1,
            get_error=lambda _index: "Unsupported ONNX opset 99",
        )


FAKE_TORCH = SimpleNamespace(cuda=SimpleNamespace(get_device_name=lambda: "Orin"))


def onnx_file(tmp_path: Path) -> Path:
    model = tmp_path / "yolo11n.onnx"
    model.write_bytes(b"onnx bytes")
    return model


def test_engine_is_built_in_fp16_once_then_loaded_from_the_cache(tmp_path) -> None:
    trt, model = FakeTensorRT(), onnx_file(tmp_path)

    first = load_or_build_engine(trt, FAKE_TORCH, model, 640, None)
    second = load_or_build_engine(trt, FAKE_TORCH, model, 640, None)

    assert first == second == b"engine fp16"
    assert len(trt.builds) == 1
    cached = engine_cache_path(model, "Orin", "10.3.0")
    assert cached.read_bytes() == b"engine fp16"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([model.name, cached.name])


def test_engine_stays_fp32_where_the_gpu_lacks_fast_fp16(tmp_path) -> None:
    trt = FakeTensorRT(fast_fp16=False)

    assert load_or_build_engine(trt, FAKE_TORCH, onnx_file(tmp_path), 640, None) == b"engine fp32"


def test_dynamic_onnx_input_is_fixed_at_the_configured_size(tmp_path) -> None:
    trt = FakeTensorRT(input_shape=(-1, 3, -1, -1))

    load_or_build_engine(trt, FAKE_TORCH, onnx_file(tmp_path), 320, None)

    [profile] = trt.builds[0].profiles
    assert profile.shapes == {"images": ((1, 3, 320, 320),) * 3}


def test_unparsable_onnx_is_a_config_error_naming_the_parser_error(tmp_path) -> None:
    with pytest.raises(DetectorConfigError, match="Unsupported ONNX opset 99"):
        load_or_build_engine(FakeTensorRT(parses=False), FAKE_TORCH, onnx_file(tmp_path), 640, None)


def test_prebuilt_engine_is_loaded_as_is(tmp_path) -> None:
    trt, engine = FakeTensorRT(), tmp_path / "yolo11n.engine"
    engine.write_bytes(b"prebuilt")

    assert load_or_build_engine(trt, FAKE_TORCH, engine, 640, None) == b"prebuilt"
    assert trt.builds == []


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

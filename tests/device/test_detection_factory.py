"""Choosing a backend from flags and model files, and the errors for combinations that fail."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from device.detection import (
    Backend,
    DetectorConfigError,
    DetectorSettings,
    DetectorUnavailableError,
    NullDetector,
    add_detector_arguments,
    create_detector,
    detector_settings_from_args,
)
from device.detection.factory import resolve_backend
from device.detection.labels import COCO_LABELS, load_labels
from device.detection.opencv_backend import OpenCVPeopleDetector


def parse(*argv: str) -> DetectorSettings:
    parser = argparse.ArgumentParser()
    add_detector_arguments(parser)
    return detector_settings_from_args(parser.parse_args(argv))


def model_file(tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    path.write_bytes(b"not a real model")
    return str(path)


def test_no_flags_mean_auto_detector_with_default_thresholds() -> None:
    assert parse() == DetectorSettings()


def test_flags_fill_every_setting() -> None:
    settings = parse(
        "--detector=torch",
        "--model=m.torchscript",
        "--confidence=0.5",
        "--iou=0.6",
        "--classes= person, car,",
        "--labels=names.txt",
    )

    assert settings == DetectorSettings(
        detector="torch",
        model="m.torchscript",
        confidence=0.5,
        iou=0.6,
        classes=["person", "car"],
        labels_file="names.txt",
    )


def test_unknown_detector_flag_is_rejected_by_the_parser() -> None:
    with pytest.raises(SystemExit):
        parse("--detector=yolo")


@pytest.mark.parametrize(
    ("name", "backend"),
    [
        (None, Backend.OPENCV),
        ("m.onnx", Backend.TENSORRT),
        ("m.engine", Backend.TENSORRT),
        ("m.pt", Backend.TORCH),
        ("m.torchscript", Backend.TORCH),
    ],
)
def test_auto_backend_follows_the_model_file(tmp_path, name, backend) -> None:
    model = None if name is None else model_file(tmp_path, name)

    assert resolve_backend(DetectorSettings(model=model)) is backend


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (DetectorSettings(detector="torch"), "--detector torch needs --model"),
        (DetectorSettings(detector="tensorrt"), "--detector tensorrt needs --model"),
        (DetectorSettings(model="/nonexistent/m.onnx"), "does not exist"),
        (DetectorSettings(model="m.tflite"), "cannot tell the backend"),
        (DetectorSettings(detector="torch", model="m.onnx"), "loads .pt/.torchscript"),
        (DetectorSettings(detector="opencv", model="m.onnx"), "takes no --model"),
        (DetectorSettings(detector="magic"), "unknown detector"),
        (DetectorSettings(confidence=1.5), "--confidence must be between 0 and 1"),
        (DetectorSettings(iou=-0.1), "--iou must be between 0 and 1"),
        (DetectorSettings(input_size=600), "multiple of 32"),
        (DetectorSettings(classes=["car"]), "only finds 'person'"),
    ],
)
def test_unworkable_settings_raise_a_one_line_config_error(settings, message) -> None:
    with pytest.raises(DetectorConfigError, match=message) as caught:
        create_detector(settings)

    assert "\n" not in str(caught.value)


def test_config_error_is_a_value_error() -> None:
    assert issubclass(DetectorConfigError, ValueError)


def test_none_detector_finds_nothing() -> None:
    detector = create_detector(DetectorSettings(detector="none"))

    assert isinstance(detector, NullDetector) and detector.name == "none"
    assert detector.detect(np.zeros((480, 640, 3), dtype=np.uint8)) == []
    detector.close()


def test_default_detector_is_opencv_people() -> None:
    with create_detector(DetectorSettings()) as detector:
        assert isinstance(detector, OpenCVPeopleDetector) and detector.name == "opencv"


@pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here"
)
def test_tensorrt_without_tensorrt_says_what_to_install(tmp_path) -> None:
    settings = DetectorSettings(model=model_file(tmp_path, "yolo11n.onnx"))

    with pytest.raises(DetectorUnavailableError, match="needs TensorRT 10 .*JetPack 6") as caught:
        create_detector(settings)

    assert "\n" not in str(caught.value)


def test_torch_without_torch_says_what_to_install(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    settings = DetectorSettings(model=model_file(tmp_path, "yolo11n.torchscript"))

    with pytest.raises(DetectorUnavailableError, match="torch backend needs PyTorch"):
        create_detector(settings)


def test_labels_default_to_coco_and_load_one_name_per_line(tmp_path) -> None:
    path = tmp_path / "labels.txt"
    path.write_text("forklift\n\n  pallet  \n", encoding="utf-8")

    assert load_labels(None) == COCO_LABELS and len(COCO_LABELS) == 80
    assert load_labels(str(path)) == ("forklift", "pallet")


def test_unreadable_or_empty_labels_file_is_a_config_error(tmp_path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n", encoding="utf-8")

    with pytest.raises(DetectorConfigError, match="cannot read labels"):
        load_labels(str(tmp_path / "missing.txt"))
    with pytest.raises(DetectorConfigError, match="has no names"):
        load_labels(str(empty))

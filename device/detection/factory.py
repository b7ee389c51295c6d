"""Detector settings, their command-line flags, and picking + building the backend."""

from __future__ import annotations

import argparse
import enum
import logging
from dataclasses import dataclass
from pathlib import Path

from device.detection.base import Detector, DetectorConfigError, NullDetector

logger = logging.getLogger(__name__)


class Backend(str, enum.Enum):  # noqa: UP042 - StrEnum is 3.11+, the device runs 3.10
    NONE = "none"
    OPENCV = "opencv"
    TORCH = "torch"
    TENSORRT = "tensorrt"


MODEL_SUFFIXES = {
    Backend.TORCH: (".pt", ".torchscript"),
    Backend.TENSORRT: (".onnx", ".engine"),
}


@dataclass
class DetectorSettings:
    """What to run on each frame; `detector=None` picks a backend from the model file."""

    detector: str | None = None
    model: str | None = None
    confidence: float = 0.25
    iou: float = 0.45
    classes: list[str] | None = None
    labels_file: str | None = None
    input_size: int = 640


def resolve_backend(settings: DetectorSettings) -> Backend:
    """Return the backend to use; raise `DetectorConfigError` for combinations that can't work."""
    if settings.detector is not None:
        try:
            backend = Backend(settings.detector)
        except ValueError:
            choices = ", ".join(b.value for b in Backend)
            raise DetectorConfigError(
                f"unknown detector {settings.detector!r}; pick one of {choices}"
            ) from None
    elif settings.model is None:
        backend = Backend.OPENCV
    else:
        suffix = Path(settings.model).suffix.lower()
        matches = [b for b, suffixes in MODEL_SUFFIXES.items() if suffix in suffixes]
        if not matches:
            raise DetectorConfigError(
                f"cannot tell the backend from model file {settings.model}; pass --detector"
            )
        backend = matches[0]
    _check_model(backend, settings.model)
    return backend


def _check_model(backend: Backend, model: str | None) -> None:
    if backend in (Backend.NONE, Backend.OPENCV):
        if model is not None:
            raise DetectorConfigError(
                f"--detector {backend.value} takes no --model; use torch or tensorrt for a model"
            )
        return
    if model is None:
        raise DetectorConfigError(f"--detector {backend.value} needs --model")
    suffix = Path(model).suffix.lower()
    if suffix not in MODEL_SUFFIXES[backend]:
        wanted = "/".join(MODEL_SUFFIXES[backend])
        raise DetectorConfigError(f"--detector {backend.value} loads {wanted} files, not {model}")
    if not Path(model).is_file():
        raise DetectorConfigError(f"model file {model} does not exist")


def _check_thresholds(settings: DetectorSettings) -> None:
    for name in ("confidence", "iou"):
        value = getattr(settings, name)
        if not 0.0 <= value <= 1.0:
            raise DetectorConfigError(f"--{name} must be between 0 and 1, got {value}")
    if settings.input_size <= 0 or settings.input_size % 32:
        raise DetectorConfigError(f"input size must be a multiple of 32, got {settings.input_size}")


def create_detector(settings: DetectorSettings) -> Detector:
    """Build the configured detector; heavy runtimes are imported only for their backend.

    Raises `DetectorConfigError` for bad settings and `DetectorUnavailableError` when the
    backend's runtime (torch, TensorRT, a GPU) is missing on this machine.
    """
    backend = resolve_backend(settings)
    _check_thresholds(settings)
    if backend is Backend.NONE:
        detector: Detector = NullDetector()
    elif backend is Backend.OPENCV:
        if settings.classes is not None and "person" not in settings.classes:
            raise DetectorConfigError("--detector opencv only finds 'person'; fix --classes")
        from device.detection.opencv_backend import OpenCVPeopleDetector

        detector = OpenCVPeopleDetector(settings.confidence, settings.iou, settings.input_size)
    else:
        from device.detection.labels import load_labels
        from device.detection.yolo import YoloPipeline

        pipeline = YoloPipeline(
            load_labels(settings.labels_file),
            input_size=settings.input_size,
            confidence=settings.confidence,
            iou=settings.iou,
            classes=settings.classes,
        )
        assert settings.model is not None  # resolve_backend guarantees it
        if backend is Backend.TORCH:
            from device.detection.torch_backend import TorchDetector

            detector = TorchDetector(settings.model, pipeline)
        else:
            from device.detection.tensorrt_backend import TensorRTDetector

            detector = TensorRTDetector(settings.model, pipeline)
    logger.info("detector %s ready (model=%s)", detector.name, settings.model)
    return detector


def add_detector_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `--detector`, `--model`, thresholds and class flags to the agent's CLI."""
    group = parser.add_argument_group("detection")
    group.add_argument(
        "--detector",
        choices=[b.value for b in Backend],
        default=None,
        help="backend (default: opencv without --model; tensorrt for .onnx/.engine; "
        "torch for .pt/.torchscript)",
    )
    group.add_argument("--model", default=None, help="YOLOv8/v11 model file")
    group.add_argument("--confidence", type=float, default=0.25, help="minimum score (0..1)")
    group.add_argument("--iou", type=float, default=0.45, help="NMS IoU threshold (0..1)")
    group.add_argument(
        "--classes",
        type=_comma_list,
        default=None,
        help="only report these labels, comma separated (e.g. person,car)",
    )
    group.add_argument(
        "--labels",
        dest="labels_file",
        default=None,
        help="class names file, one per line in model order (default: COCO 80)",
    )


def _comma_list(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma separated class names")
    return names


def detector_settings_from_args(args: argparse.Namespace) -> DetectorSettings:
    """Return the settings parsed by `add_detector_arguments`."""
    return DetectorSettings(
        detector=args.detector,
        model=args.model,
        confidence=args.confidence,
        iou=args.iou,
        classes=args.classes,
        labels_file=args.labels_file,
    )

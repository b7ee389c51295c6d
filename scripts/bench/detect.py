"""Benchmark each available detection backend: FPS and per-stage milliseconds at 640x640.

    python -m scripts.bench.detect [--iterations 50] [--warmup 5]

Backends that cannot run here (no torch, no CUDA, no TensorRT) are reported and skipped.
The YOLO backends run a randomly initialised YOLO-layout network built below (8400 anchors,
80 classes, a few GFLOPs like YOLOv8n), so speed is realistic but detections are not.
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from device.detection import (
    Detector,
    DetectorConfigError,
    DetectorSettings,
    DetectorUnavailableError,
)
from device.detection.labels import COCO_LABELS
from device.detection.opencv_backend import OpenCVPeopleDetector
from device.detection.yolo import YoloDetector, YoloPipeline

logger = logging.getLogger(__name__)

INPUT_SIZE = 640
CLASS_LOGIT_SHIFT = 4.0  # standard deviations; sets how many scores pass 0.25
PHOTO = Path(__file__).parents[2] / "tests" / "data" / "basketball1.jpg"


@dataclass
class Result:
    backend: str
    pre_ms: float | None
    infer_ms: float
    post_ms: float | None
    total_ms: float
    fps: float
    detections: int


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def test_frame() -> np.ndarray:
    """A 1280x720 camera-like frame: the test photograph scaled up, or noise without it."""
    photo = cv2.imread(str(PHOTO))
    if photo is None:
        return np.random.default_rng(0).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    return cv2.resize(photo, (1280, 720))


def build_model(torch: Any) -> Any:
    """A YOLO-layout conv net: P3/P4/P5 heads (80+40+20 squared = 8400 anchors) x (4+80)."""
    nn = torch.nn

    def conv(c_in: int, c_out: int, stride: int = 1) -> Any:
        return nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.SiLU()
        )

    class BenchYolo(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(conv(3, 16, 2), conv(16, 32, 2), conv(32, 32), conv(32, 32))
            self.p3 = nn.Sequential(conv(32, 64, 2), conv(64, 64), conv(64, 64))
            self.p4 = nn.Sequential(conv(64, 128, 2), conv(128, 128), conv(128, 128))
            self.p5 = nn.Sequential(conv(128, 256, 2), conv(256, 256), conv(256, 256))
            self.heads = nn.ModuleList(
                nn.Sequential(conv(c, 64), nn.Conv2d(64, 4 + len(COCO_LABELS), 1))
                for c in (64, 128, 256)
            )
            # Anchor centres and strides of the 80x80, 40x40 and 20x20 grids, as in YOLOv8.
            centres, strides = [], []
            for stride in (8, 16, 32):
                cells = INPUT_SIZE // stride
                ys, xs = torch.meshgrid(torch.arange(cells), torch.arange(cells), indexing="ij")
                centres.append((torch.stack([xs, ys]).flatten(1) + 0.5) * stride)
                strides.append(torch.full((1, cells * cells), float(stride)))
            self.register_buffer("centres", torch.cat(centres, 1))
            self.register_buffer("strides", torch.cat(strides, 1))

        def forward(self, images: Any) -> Any:
            p3 = self.p3(self.stem(images))
            p4 = self.p4(p3)
            p5 = self.p5(p4)
            raw = torch.cat(
                [head(p).flatten(2) for head, p in zip(self.heads, (p3, p4, p5), strict=True)], 2
            )
            xy = self.centres + raw[:, :2].tanh() * self.strides
            wh = 4 * self.strides * raw[:, 2:4].exp().clamp(max=4.0)
            # Untrained logits barely vary; standardising each class over the anchors and
            # shifting down leaves a few hundred candidates over 0.25, as a trained model has
            # on a busy frame, so decode and NMS do realistic work.
            logits = raw[:, 4:]
            mean = logits.mean(2, keepdim=True)
            std = logits.std(2, keepdim=True) + 1e-12
            scores = ((logits - mean) / std - CLASS_LOGIT_SHIFT).sigmoid()
            return torch.cat([xy, wh, scores], 1)

    return BenchYolo().eval()


def count_gflops(torch: Any, model: Any) -> float:
    macs = 0

    def hook(module: Any, _inputs: Any, output: Any) -> None:
        nonlocal macs
        kernel = module.kernel_size[0] * module.kernel_size[1]
        macs += output.numel() * module.in_channels // module.groups * kernel

    handles = [
        m.register_forward_hook(hook) for m in model.modules() if type(m).__name__ == "Conv2d"
    ]
    with torch.inference_mode():
        model(torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE))
    for handle in handles:
        handle.remove()
    return 2 * macs / 1e9


def time_stages(detector: Detector, frame: np.ndarray, warmup: int, iterations: int) -> Result:
    """Run the detector on `frame`; YOLO backends are timed per stage, others as a whole."""
    stages: dict[str, list[float]] = {"pre": [], "infer": [], "post": [], "total": []}
    detections = 0

    def timed(stage: str, call: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        value = call()
        stages[stage].append((time.perf_counter() - start) * 1000)
        return value

    for i in range(warmup + iterations):
        if i == warmup:
            stages = {key: [] for key in stages}
        start = time.perf_counter()
        if isinstance(detector, YoloDetector):
            blob, box = timed("pre", lambda: detector.pipeline.preprocess(frame))
            output = timed("infer", lambda blob=blob: detector.infer(blob))
            found = timed("post", lambda o=output, b=box: detector.pipeline.postprocess(o, b))
        else:
            found = timed("infer", lambda: detector.detect(frame))
        stages["total"].append((time.perf_counter() - start) * 1000)
        detections = len(found)

    def median(stage: str) -> float | None:
        return statistics.median(stages[stage]) if stages[stage] else None

    # Medians, FPS included: shared CPUs see outliers from other processes.
    total = statistics.median(stages["total"])
    return Result(
        detector.name,
        median("pre"),
        median("infer") or 0.0,
        median("post"),
        total,
        1000 / total,
        detections,
    )


def yolo_detectors(workdir: Path) -> list[tuple[str, Callable[[], Detector]]]:
    """Return (label, factory) for each YOLO backend this machine can run."""
    try:
        import torch
    except ImportError:
        print("torch: not installed, skipping torch and tensorrt")
        return []
    from device.detection.tensorrt_backend import TensorRTDetector
    from device.detection.torch_backend import TorchDetector

    model = build_model(torch)
    print(f"YOLO bench model: {count_gflops(torch, model):.1f} GFLOPs, 8400 anchors, 80 classes")
    example = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)
    torchscript = workdir / "bench.torchscript"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.trace(model, example).save(str(torchscript))

    def pipeline() -> YoloPipeline:
        return YoloPipeline(COCO_LABELS, input_size=INPUT_SIZE)

    factories: list[tuple[str, Callable[[], Detector]]] = [
        ("torch cpu fp32", lambda: TorchDetector(str(torchscript), pipeline(), device="cpu"))
    ]
    if not torch.cuda.is_available():
        print("CUDA: not available, skipping torch cuda and tensorrt")
        return factories
    factories.append(("torch cuda fp16", lambda: TorchDetector(str(torchscript), pipeline())))
    onnx_model = workdir / "bench.onnx"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(model, (example,), str(onnx_model), dynamo=False,
                              input_names=["images"], output_names=["output0"])  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - any exporter failure just skips TensorRT
        print(f"tensorrt: ONNX export failed ({exc}), skipping")
        return factories
    factories.append(("tensorrt fp16", lambda: TensorRTDetector(str(onnx_model), pipeline())))
    return factories


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    frame = test_frame()
    print(f"CPU: {cpu_name()}")
    gpu = "none"
    try:
        import torch

        print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name()
    except ImportError:
        pass
    print(f"GPU: {gpu}")
    print(
        f"frame {frame.shape[1]}x{frame.shape[0]} -> input {INPUT_SIZE}x{INPUT_SIZE}, batch 1, "
        f"{args.iterations} runs after {args.warmup} warm-up; times are medians"
    )

    results: list[Result] = []
    settings = DetectorSettings()
    with tempfile.TemporaryDirectory() as tmp:
        candidates: list[tuple[str, Callable[[], Detector]]] = [
            ("opencv hog", lambda: OpenCVPeopleDetector(settings.confidence, settings.iou)),
            *yolo_detectors(Path(tmp)),
        ]
        for label, factory in candidates:
            try:
                detector = factory()
            except (DetectorUnavailableError, DetectorConfigError) as exc:
                print(f"{label}: unavailable ({exc})")
                continue
            with detector:
                result = time_stages(detector, frame, args.warmup, args.iterations)
            result.backend = label
            results.append(result)

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    header = ("backend", "pre ms", "infer ms", "post ms", "total ms", "FPS", "dets")
    print("\n{:<16} {:>7} {:>9} {:>8} {:>9} {:>6} {:>5}".format(*header))
    for r in results:
        print(
            f"{r.backend:<16} {ms(r.pre_ms):>7} {ms(r.infer_ms):>9} {ms(r.post_ms):>8} "
            f"{r.total_ms:>9.1f} {r.fps:>6.1f} {r.detections:>5}"
        )
    print("(opencv hog is timed as one stage: resize + detectMultiScale + NMS)")


if __name__ == "__main__":
    main()

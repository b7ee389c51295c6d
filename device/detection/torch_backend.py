"""YOLO TorchScript models through PyTorch: CUDA + FP16 when a GPU is present, else CPU FP32."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from device.detection.base import DetectorConfigError, DetectorUnavailableError
from device.detection.yolo import YoloDetector, YoloPipeline

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "torch backend needs PyTorch: `pip install torch` (on Jetson, NVIDIA's JetPack wheel); "
    "or use --detector opencv"
)


def import_torch() -> Any:
    """Import torch, or explain what to install; kept lazy so CPU-only agents never load it."""
    try:
        import torch
    except ImportError as exc:
        raise DetectorUnavailableError(INSTALL_HINT) from exc
    return torch


class TorchDetector(YoloDetector):
    """Runs a TorchScript export (`yolo export format=torchscript`) of a YOLOv8/v11 model."""

    name = "torch"

    def __init__(self, model_path: str, pipeline: YoloPipeline, device: str | None = None) -> None:
        super().__init__(pipeline)
        torch = import_torch()
        self._torch = torch
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        # FP16 halves memory traffic on GPUs; CPU kernels for half are slow or missing.
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        try:
            with warnings.catch_warnings():
                # Recent torch deprecates TorchScript; JetPack's torch and YOLO exports use it.
                warnings.filterwarnings(
                    "ignore", "`torch.jit.load` is deprecated", DeprecationWarning
                )
                model = torch.jit.load(str(Path(model_path)), map_location=self.device)
        except (RuntimeError, ValueError) as exc:
            raise DetectorConfigError(
                f"{model_path} is not a TorchScript model; export it with "
                "`yolo export format=torchscript` (plain .pt checkpoints cannot be loaded)"
            ) from exc
        self._model = model.eval().to(self.dtype)
        logger.info("torch detector loaded %s on %s (%s)", model_path, self.device, self.dtype)

    def infer(self, blob: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            tensor = torch.from_numpy(blob).to(self.device, non_blocking=True).to(self.dtype)
            output = self._model(tensor)
            if isinstance(output, (list, tuple)):
                output = output[0]  # some exports also return feature maps after the boxes
            return output.float().cpu().numpy()

    def close(self) -> None:
        self._model = None
        if self.device.type == "cuda":
            self._torch.cuda.empty_cache()

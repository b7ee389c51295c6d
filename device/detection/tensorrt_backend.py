"""YOLO models through TensorRT 10: ONNX built once into an FP16 engine, cached per GPU/version.

I/O buffers are torch CUDA tensors and inference runs on one torch CUDA stream, so the only
GPU runtime we need besides TensorRT is the torch that JetPack already ships (no pycuda).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from device.detection.base import DetectorConfigError, DetectorUnavailableError
from device.detection.yolo import YoloDetector, YoloPipeline

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "tensorrt backend needs TensorRT 10 (ships with JetPack 6; on x86 `pip install tensorrt`) "
    "and PyTorch with CUDA for its buffers; or use --detector torch/opencv"
)
WORKSPACE_BYTES = 1 << 30  # builder scratch memory; Jetson Orin Nano has 8 GiB shared in all
HASH_CHUNK = 1 << 20  # bytes


def import_tensorrt() -> tuple[Any, Any]:
    """Import (tensorrt, torch) and check a CUDA GPU is visible, or say what is missing."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise DetectorUnavailableError(INSTALL_HINT) from exc
    if int(trt.__version__.split(".")[0]) < 10:
        raise DetectorUnavailableError(f"{INSTALL_HINT} (found TensorRT {trt.__version__})")
    try:
        import torch
    except ImportError as exc:
        raise DetectorUnavailableError(INSTALL_HINT) from exc
    if not torch.cuda.is_available():
        raise DetectorUnavailableError("tensorrt backend needs a CUDA GPU; torch sees none")
    return trt, torch


def file_sha256(path: Path) -> str:
    """Return the hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def engine_cache_path(
    onnx_path: Path, gpu_name: str, trt_version: str, input_size: int = 640
) -> Path:
    """Return where the engine built from `onnx_path` for this GPU and TensorRT is cached.

    Engines only load on the GPU model and TensorRT version that built them, and must be
    rebuilt when the ONNX file changes, so all three are in the name; so is the input size,
    which fixes the shape of models exported with dynamic axes.
    """
    gpu = re.sub(r"[^a-z0-9]+", "-", gpu_name.lower()).strip("-") or "gpu"
    digest = file_sha256(onnx_path)[:16]
    name = f"{onnx_path.stem}.{gpu}.trt{trt_version}.{input_size}px.{digest}.engine"
    return onnx_path.with_name(name)


def build_engine(trt: Any, onnx_path: Path, input_size: int, trt_logger: Any) -> bytes:
    """Build a serialized engine from an ONNX file, FP16 where the GPU has fast FP16."""
    builder = trt.Builder(trt_logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise DetectorConfigError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    fp16 = has_fast_fp16(builder)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = None
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        if any(dim < 0 for dim in tensor.shape):
            shape = fixed_input_shape(tuple(tensor.shape), input_size)
            profile = profile or builder.create_optimization_profile()
            profile.set_shape(tensor.name, shape, shape, shape)
    if profile is not None:
        config.add_optimization_profile(profile)
    logger.info(
        "building TensorRT engine from %s (fp16=%s); this takes minutes on Jetson, once",
        onnx_path,
        fp16,
    )
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise DetectorConfigError(f"TensorRT could not build an engine from {onnx_path}")
    return bytes(serialized)


def has_fast_fp16(builder: Any) -> bool:
    """Whether to build in FP16: the builder says so (deprecated from 10.x, assumed yes after)."""
    return bool(getattr(builder, "platform_has_fast_fp16", True))


def fixed_input_shape(shape: tuple[int, ...], input_size: int) -> tuple[int, ...]:
    """Replace dynamic dims of an NCHW input: batch -> 1, channels -> 3, spatial -> `input_size`."""
    defaults = (1, 3) + (input_size,) * (len(shape) - 2)
    return tuple(default if dim < 0 else dim for dim, default in zip(shape, defaults, strict=True))


def load_or_build_engine(trt: Any, torch: Any, model: Path, input_size: int, log: Any) -> bytes:
    """Return serialized engine bytes: a prebuilt `.engine`, the cached build, or a new build."""
    if model.suffix == ".engine":
        return model.read_bytes()
    cached = engine_cache_path(model, torch.cuda.get_device_name(), trt.__version__, input_size)
    if cached.exists():
        logger.info("using cached TensorRT engine %s", cached)
        return cached.read_bytes()
    data = build_engine(trt, model, input_size, log)
    tmp: str | None = None
    try:
        # Write then rename so a crash mid-write never leaves a truncated engine to load.
        fd, tmp = tempfile.mkstemp(dir=cached.parent, prefix=f".{cached.name}.", suffix=".part")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, cached)
        logger.info("cached TensorRT engine at %s", cached)
    except OSError as exc:
        logger.warning(
            "cannot cache TensorRT engine next to %s (rebuilt next start): %s", model, exc
        )
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return data


class TensorRTDetector(YoloDetector):
    """Runs a YOLO ONNX model or prebuilt engine with TensorRT on the GPU."""

    name = "tensorrt"

    def __init__(self, model_path: str, pipeline: YoloPipeline) -> None:
        super().__init__(pipeline)
        trt, torch = import_tensorrt()
        self._torch = torch
        device = torch.device("cuda", torch.cuda.current_device())
        self._stream = torch.cuda.Stream(device)
        trt_logger = trt.Logger(trt.Logger.WARNING)
        data = load_or_build_engine(trt, torch, Path(model_path), pipeline.input_size, trt_logger)
        self._runtime = trt.Runtime(trt_logger)
        self._engine = self._runtime.deserialize_cuda_engine(data)
        if self._engine is None:
            raise DetectorConfigError(
                f"{model_path}: engine does not load with TensorRT {trt.__version__} on "
                f"{torch.cuda.get_device_name()}; rebuild it from the ONNX file"
            )
        self._context = self._engine.create_execution_context()
        self._input, self._output = self._bind_buffers(trt, torch, device)
        logger.info("tensorrt detector ready: %s, input %s", model_path, tuple(self._input.shape))

    def _bind_buffers(self, trt: Any, torch: Any, device: Any) -> tuple[Any, Any]:
        engine, context = self._engine, self._context
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or not outputs:
            raise DetectorConfigError(f"expected 1 input and outputs, engine has {names}")
        shape = tuple(engine.get_tensor_shape(inputs[0]))
        if any(dim < 0 for dim in shape):
            shape = fixed_input_shape(shape, self.pipeline.input_size)
        elif len(shape) != 4 or shape[2] != shape[3]:
            raise DetectorConfigError(f"expected a square NCHW model input, got {shape}")
        elif shape[2] != self.pipeline.input_size:
            logger.info("engine input is %d px; ignoring input_size", shape[2])
            self.pipeline.input_size = shape[2]
        context.set_input_shape(inputs[0], shape)
        buffers = {}
        for name in names:
            dtype = torch_dtype(trt, torch, engine.get_tensor_dtype(name))
            tensor_shape = tuple(context.get_tensor_shape(name))
            buffers[name] = torch.empty(tensor_shape, dtype=dtype, device=device)
            context.set_tensor_address(name, buffers[name].data_ptr())
        # Extra outputs (e.g. segmentation protos) are bound but ignored: boxes come first.
        boxes = next((n for n in outputs if buffers[n].dim() == 3), outputs[0])
        return buffers[inputs[0]], buffers[boxes]

    def infer(self, blob: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.cuda.stream(self._stream):
            self._input.copy_(torch.from_numpy(blob))
            if not self._context.execute_async_v3(self._stream.cuda_stream):
                raise RuntimeError("TensorRT execution failed")
            # The device-to-host copy runs on the same stream, so it waits for the engine.
            return self._output.float().cpu().numpy()

    def close(self) -> None:
        self._context = None
        self._engine = None
        self._input = self._output = None
        self._torch.cuda.empty_cache()


def torch_dtype(trt: Any, torch: Any, dtype: Any) -> Any:
    """Return the torch dtype for a TensorRT tensor dtype."""
    mapping = {
        trt.float32: torch.float32,
        trt.float16: torch.float16,
        trt.int32: torch.int32,
        trt.int8: torch.int8,
        trt.bool: torch.bool,
    }
    for name in ("int64", "bfloat16", "uint8"):
        if hasattr(trt, name):
            mapping[getattr(trt, name)] = getattr(torch, name)
    try:
        return mapping[dtype]
    except KeyError as exc:
        raise DetectorConfigError(f"unsupported TensorRT tensor dtype {dtype}") from exc

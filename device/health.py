"""Health report of one camera's agent: what an operator needs to tell camera, disk, detector
and network faults apart without SSH. Stdlib and psutil only (it runs on JetPack's 3.10).

Fields (all optional except uptime and spool): see docs/device-agent.md.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any

from device import __version__
from device.capture import CapturePipeline
from device.spool import Spool

try:
    import psutil
except ImportError:  # pragma: no cover - psutil is in requirements; a bare box still reports
    psutil = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

THERMAL_DIR = Path("/sys/class/thermal")
# Jetson's integrated GPU exposes its load (per mille) here; desktop GPUs are not probed.
JETSON_GPU_LOAD = Path("/sys/devices/gpu.0/load")
MAX_THERMAL_ZONES = 16


def spool_summary(spool: Spool) -> tuple[int, float | None]:
    """(entries waiting, age in seconds of the oldest) from the entry names' time stamps."""
    entries = spool.entries()
    if not entries:
        return 0, None
    try:
        oldest_ns = int(entries[0].name[:20])
    except ValueError:
        return len(entries), None
    return len(entries), round(max(0.0, time.time() - oldest_ns / 1e9), 1)


def temperatures(thermal_dir: Path = THERMAL_DIR) -> dict[str, float]:
    """Degrees Celsius per thermal zone type (`cpu-thermal`, `GPU-therm`...); {} elsewhere."""
    found: dict[str, float] = {}
    for zone in sorted(thermal_dir.glob("thermal_zone*"))[:MAX_THERMAL_ZONES]:
        try:
            kind = (zone / "type").read_text().strip() or zone.name
            found[kind[:40]] = round(int((zone / "temp").read_text().strip()) / 1000.0, 1)
        except (OSError, ValueError):
            continue
    return found


def gpu_status(load_file: Path = JETSON_GPU_LOAD) -> dict[str, Any] | None:
    """The Jetson GPU load in percent where the file is visible, else None."""
    try:
        return {"load_percent": round(int(load_file.read_text().strip()) / 10.0, 1)}
    except (OSError, ValueError):
        return None


def collect_health(
    started: float,
    pipeline: CapturePipeline,
    spool: Spool,
    state_dir: Path,
    detector_model: str | None,
    transport: str | None = None,
) -> dict[str, Any]:
    """One report; blocking (disk and /sys reads): call through ``run_blocking``."""
    depth, oldest = spool_summary(spool)
    try:
        disk_free: int | None = shutil.disk_usage(state_dir).free
    except OSError:
        disk_free = None
    frame_age = round(time.time() - pipeline.last_frame_at, 1) if pipeline.last_frame_at else None
    report: dict[str, Any] = {
        "uptime_seconds": round(time.monotonic() - started, 1),
        "agent_version": __version__,
        "python": platform.python_version(),
        "detector": {
            "backend": pipeline.detector.name,
            "model": detector_model,
            "last_inference_ms": pipeline.last_inference_ms,
        },
        "camera": {
            "source_kind": pipeline.camera.kind.value,
            "state": "error"
            if pipeline.camera_error
            else ("ok" if frame_age is not None else "idle"),
            "error": pipeline.camera_error,
            "last_frame_age_seconds": frame_age,
        },
        "spool_depth": depth,
        "spool_oldest_seconds": oldest,
        "disk_free_bytes": disk_free,
        "temperature_c": temperatures(),
        "gpu": gpu_status(),
        "transport": transport,
    }
    if hasattr(os, "getloadavg"):
        report["cpu_load"] = [round(value, 2) for value in os.getloadavg()]
    if psutil is not None:
        memory = psutil.virtual_memory()
        report["memory"] = {"total_bytes": memory.total, "available_bytes": memory.available}
        report["cpu_percent"] = psutil.cpu_percent(interval=None)
    return report

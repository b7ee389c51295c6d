"""Several cameras in one agent process: the config file, one shared detector, one agent
(stream, spool, state, key) per camera, and a supervisor where one camera's failure leaves
the others running.

The file is a TOML subset (``device.tomlish``) or JSON (a ``.json`` name, or text starting
with ``{``); docs/device-agent.md shows both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from device import tomlish
from device.agent import EXIT_OK, Agent
from device.detection import Detection, Detector
from device.device_commands import EXIT_RESTART

logger = logging.getLogger(__name__)

CAMERA_KEYS = {"device_id", "key", "key_file", "source", "resolution", "backend", "warmup",
               "state_dir", "save_frames"}  # fmt: skip
TOP_KEYS = {"api_url", "health_interval_seconds", "cameras"}


class ConfigFileError(ValueError):
    """The agent file cannot be used (the message names the file and the problem)."""


@dataclass(frozen=True)
class CameraEntry:
    device_id: str
    key: str
    source: str
    resolution: str | None = None
    backend: str | None = None
    warmup: int | None = None
    state_dir: str | None = None
    save_frames: bool = False


def parse_document(text: str, name: str) -> dict[str, Any]:
    if name.endswith(".json") or text.lstrip().startswith("{"):
        document = json.loads(text)
    else:
        document = tomlish.loads(text)
    if not isinstance(document, dict):
        raise ValueError("the top level must be a table/object")
    return document


def load_config(path: Path) -> tuple[dict[str, Any], list[CameraEntry]]:
    """(top-level settings, cameras) of an agent file; ConfigFileError when unusable."""
    try:
        document = parse_document(path.read_text(encoding="utf-8"), path.name)
    except (OSError, ValueError) as exc:
        raise ConfigFileError(f"{path}: {exc}") from None
    unknown = set(document) - TOP_KEYS
    cameras = document.get("cameras")
    if unknown:
        raise ConfigFileError(f"{path}: unknown keys {sorted(unknown)}")
    if not isinstance(cameras, list) or not cameras:
        raise ConfigFileError(f"{path}: no cameras (add [[cameras]] tables)")
    entries = [_camera(path, number, item) for number, item in enumerate(cameras, 1)]
    ids = [entry.device_id for entry in entries]
    if len(set(ids)) != len(ids):
        raise ConfigFileError(f"{path}: a device id is listed twice")
    return {k: v for k, v in document.items() if k != "cameras"}, entries


def _camera(path: Path, number: int, item: Any) -> CameraEntry:
    where = f"{path}: camera {number}"
    if not isinstance(item, dict):
        raise ConfigFileError(f"{where}: not a table")
    unknown = set(item) - CAMERA_KEYS
    if unknown:
        raise ConfigFileError(f"{where}: unknown keys {sorted(unknown)}")
    for required in ("device_id", "source"):
        if not isinstance(item.get(required), (str, int)) or str(item[required]) == "":
            raise ConfigFileError(f"{where}: {required} is required")
    key = item.get("key")
    if item.get("key_file"):
        try:
            key = Path(str(item["key_file"])).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigFileError(f"{where}: key_file: {exc}") from None
    if not key:
        raise ConfigFileError(f"{where}: key or key_file is required")
    warmup = item.get("warmup")
    if warmup is not None and (not isinstance(warmup, int) or warmup < 0):
        raise ConfigFileError(f"{where}: warmup must be a whole number >= 0")
    return CameraEntry(
        device_id=str(item["device_id"]),
        key=str(key),
        source=str(item["source"]),
        resolution=item.get("resolution"),
        backend=item.get("backend"),
        warmup=warmup,
        state_dir=item.get("state_dir"),
        save_frames=bool(item.get("save_frames", False)),
    )


def camera_args(
    args: argparse.Namespace, top: dict[str, Any], entry: CameraEntry
) -> argparse.Namespace:
    """The flags of one camera: the command line's, overridden by the file."""
    values = dict(vars(args))
    state_root = Path(args.state_dir or Path(".visant") / "device")
    values.update(
        config=None,
        device_id=entry.device_id,
        api_key=entry.key,
        camera_source=entry.source,
        state_dir=entry.state_dir or str(state_root / entry.device_id),
        spool_dir=None,  # <state_dir>/spool: one spool per camera
        api_url=str(top.get("api_url") or args.api_url),
    )
    if entry.resolution is not None:
        values["camera_resolution"] = entry.resolution
    if entry.backend is not None:
        values["camera_backend"] = entry.backend
    if entry.warmup is not None:
        values["camera_warmup"] = entry.warmup
    if entry.save_frames:
        values["save_frames"] = True
        values["save_frames_dir"] = str(Path(args.save_frames_dir) / entry.device_id)
    if top.get("health_interval_seconds"):
        values["health_interval"] = float(top["health_interval_seconds"])
    return argparse.Namespace(**values)


class SharedDetector(Detector):
    """One detector (one model in GPU memory) for every camera, one frame at a time.

    ``close`` is a no-op: a camera whose config swaps in its own detector must not close
    the one the others use; ``close_shared`` releases it when the process ends.
    """

    def __init__(self, inner: Detector) -> None:
        self.inner = inner
        self.name = inner.name
        self._lock = threading.Lock()

    def detect(self, frame: np.ndarray) -> list[Detection]:
        with self._lock:
            return self.inner.detect(frame)

    def close(self) -> None:
        pass

    def close_shared(self) -> None:
        self.inner.close()


async def serve_agents(agents: Sequence[Agent]) -> int:
    """Run every camera's agent until all end or a stop/restart; return the exit code.

    A camera whose agent ends (its key refused, a crash) is logged and the others go on.
    A restart command to any camera restarts the process, so every camera stops then.
    """
    tasks = {
        asyncio.create_task(agent.run(), name=agent.options.device_id): agent for agent in agents
    }
    codes: dict[str, int] = {}
    pending = set(tasks)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            agent = tasks[task]
            code = task.result() if not task.cancelled() and task.exception() is None else 1
            codes[agent.options.device_id] = code
            if code == EXIT_RESTART:
                for other in agents:
                    other.stop()
            elif code != EXIT_OK and pending:
                logger.error(
                    "camera %s stopped (exit %d); the other %d keep running",
                    agent.options.device_id,
                    code,
                    len(pending),
                )
    if EXIT_RESTART in codes.values():
        return EXIT_RESTART
    return max(codes.values(), default=EXIT_OK)


def stop_all(agents: Sequence[Agent]) -> None:
    for agent in agents:
        agent.stop()

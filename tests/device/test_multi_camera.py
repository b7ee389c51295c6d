"""The multi-camera agent file (TOML subset or JSON) and the shared detector."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

import numpy as np
import pytest

from device.detection import Detection, Detector
from device.main_v2 import build_parser
from device.multi_camera import ConfigFileError, SharedDetector, camera_args, load_config
from device.tomlish import loads

KEY = "vsk_" + "k" * 43


def test_toml_subset_reads_tables_arrays_and_comments() -> None:
    document = loads(
        'api_url = "http://cloud:8000"  # the cloud\n'
        "health_interval_seconds = 30\n"
        "[[cameras]]\n"
        "device_id = 'cam-1'\n"
        'source = "rtsp://h/#1"\n'
        "warmup = 3\nsave_frames = true\nratio = 1.5\n"
        'labels = ["a", "b,c"]\n'
        "[[cameras]]\n"
        'device_id = "cam-2"\nsource = "0"\n'
    )
    assert document["api_url"] == "http://cloud:8000"
    assert document["cameras"][0] == {
        "device_id": "cam-1",
        "source": "rtsp://h/#1",
        "warmup": 3,
        "save_frames": True,
        "ratio": 1.5,
        "labels": ["a", "b,c"],
    }
    assert document["cameras"][1]["device_id"] == "cam-2"


@pytest.mark.parametrize(
    "text", ['a = "unclosed', "a = nonsense", "[[x]\n", "a = 1\na = 2", "just words"]
)
def test_toml_subset_names_the_bad_line(text: str) -> None:
    with pytest.raises(ValueError, match="line"):
        loads(text)


def test_config_file_json_and_key_file(tmp_path: Path) -> None:
    (tmp_path / "cam.key").write_text(KEY + "\n")
    path = tmp_path / "agent.json"
    path.write_text(
        '{"cameras": [{"device_id": "cam-1", "key_file": "%s", "source": "0",'
        ' "resolution": "640x480"}]}' % (tmp_path / "cam.key")
    )
    top, cameras = load_config(path)
    assert top == {} and cameras[0].key == KEY and cameras[0].resolution == "640x480"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "no cameras"),
        ('[[cameras]]\ndevice_id = "a"\nsource = "0"\n', "key or key_file"),
        (f'[[cameras]]\ndevice_id = "a"\nkey = "{KEY}"\n', "source is required"),
        (f'[[cameras]]\ndevice_id = "a"\nkey = "{KEY}"\nsource = "0"\ncolour = 1\n', "unknown"),
        (
            f'[[cameras]]\ndevice_id = "a"\nkey = "{KEY}"\nsource = "0"\n' * 2,
            "listed twice",
        ),
    ],
)
def test_config_file_refusals_say_why(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(body)
    with pytest.raises(ConfigFileError, match=message):
        load_config(path)


def test_camera_args_overlay_the_flags(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        f'health_interval_seconds = 5\n[[cameras]]\ndevice_id = "cam-9"\nkey = "{KEY}"\n'
        'source = "/dev/video2"\nwarmup = 0\n'
    )
    top, cameras = load_config(path)
    flags = build_parser().parse_args(["--config", str(path), "--state-dir", str(tmp_path)])
    args = camera_args(flags, top, cameras[0])
    assert isinstance(args, argparse.Namespace)
    assert (args.device_id, args.api_key, args.camera_source) == ("cam-9", KEY, "/dev/video2")
    assert args.state_dir == str(tmp_path / "cam-9") and args.spool_dir is None
    assert args.camera_warmup == 0 and args.health_interval == 5.0 and args.config is None


class _CountingDetector(Detector):
    name = "counting"

    def __init__(self) -> None:
        self.active = 0
        self.most = 0
        self.closed = False
        self._guard = threading.Lock()

    def detect(self, frame: np.ndarray) -> list[Detection]:
        with self._guard:
            self.active += 1
            self.most = max(self.most, self.active)
        threading.Event().wait(0.01)
        with self._guard:
            self.active -= 1
        return []

    def close(self) -> None:
        self.closed = True


def test_shared_detector_runs_one_frame_at_a_time_and_outlives_close() -> None:
    inner = _CountingDetector()
    shared = SharedDetector(inner)
    frame = np.zeros((8, 8, 3), np.uint8)
    threads = [threading.Thread(target=shared.detect, args=(frame,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    shared.close()  # a camera swapping detectors must not close the shared one
    assert inner.most == 1 and not inner.closed and shared.name == "counting"
    shared.close_shared()
    assert inner.closed

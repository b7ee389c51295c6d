"""The command line as a real subprocess: flags, exit codes, signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.device.conftest import DEVICE_ID, DEVICE_KEY, FakeCloud
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
# The original agent's flags: kept so existing device setups start unchanged.
ORIGINAL_AGENT_FLAGS = [
    "--api-url",
    "--device-id",
    "--camera-source",
    "--camera-backend",
    "--camera-resolution",
    "--camera-warmup",
    "--upload-timeout",
    "--stream-timeout",
    "--reconnect-delay",
    "--save-frames",
    "--save-frames-dir",
    "--verbose",
]
EXTRA_FLAGS = ["--api-key", "--spool-dir", "--state-dir", "--spool-max-mb", "--watch", "--detector"]


def agent_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "VISANT_API_KEY"}
    env["PYTHONPATH"] = str(REPO)
    return env


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "device.main_v2", *args],
        cwd=REPO,
        env=agent_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def start_agent(cloud: FakeCloud, image: Path, tmp_path: Path, *extra: str) -> subprocess.Popen:
    args = ["--api-url", cloud.url, "--device-id", DEVICE_ID, "--camera-source", str(image)]
    args += ["--state-dir", str(tmp_path / "state"), "--detector", "none", *extra]
    env = agent_env() | {"VISANT_API_KEY": DEVICE_KEY}
    return subprocess.Popen(
        [sys.executable, "-m", "device.main_v2", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_help_explains_every_flag() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for flag in ORIGINAL_AGENT_FLAGS + EXTRA_FLAGS:
        assert flag in result.stdout
    assert "(default: 2)" in result.stdout  # --camera-warmup
    assert "(default: 70)" in result.stdout  # --stream-timeout
    assert "debug_captures" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device-id", "cam", "--no-such-flag"], "unrecognized arguments"),
        (["--device-id", "cam", "--camera-warmup", "-1"], "--camera-warmup"),
        (["--device-id", "bad id!", "--api-key", "k"], "invalid --device-id"),
        (["--device-id", "cam", "--camera-source", "/tmp/none.jpg"], "no device key"),
        (["--device-id", "cam", "--api-key", "k", "--camera-resolution", "big"], "resolution"),
        (["--device-id", "cam", "--api-key", "k", "--camera-source", "/nope/x.jpg"], "camera"),
        (["--device-id", "cam", "--api-key", "k", "--camera-source", "/nope/clip.mp4"], "camera"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    args: list[str], message: str, tmp_path: Path
) -> None:
    result = run_cli(*args, "--state-dir", str(tmp_path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_sigterm_exits_zero_promptly(
    fake_cloud: FakeCloud, scene_image: Path, tmp_path: Path
) -> None:
    process = start_agent(fake_cloud, scene_image, tmp_path)
    try:
        wait_until(lambda: len(fake_cloud.connections) == 1, timeout=20)
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        assert time.monotonic() - began < 5
    finally:
        process.kill()
        output = process.communicate()[0]
    assert "Traceback" not in output


def test_wrong_key_exits_non_zero_with_a_clear_message(
    fake_cloud: FakeCloud, scene_image: Path, tmp_path: Path
) -> None:
    process = start_agent(fake_cloud, scene_image, tmp_path, "--api-key", "vsk_wrong")
    try:
        assert process.wait(20) == 3
    finally:
        process.kill()
        output = process.communicate()[0]
    assert "refused device cam-1" in output and "check --api-key" in output
    assert len(fake_cloud.connections) == 1  # no retry loop


def test_persisted_config_is_used_at_start_until_the_cloud_sends_newer(
    scene_image: Path, tmp_path: Path
) -> None:
    from device.main_v2 import build_agent, build_parser
    from device.state import AgentState

    AgentState(tmp_path / "state").set_config(4, {"camera": {"resolution": "64x48", "warmup": 5}})
    args = build_parser().parse_args(
        ["--device-id", DEVICE_ID, "--api-key", DEVICE_KEY, "--camera-source", str(scene_image)]
        + ["--state-dir", str(tmp_path / "state"), "--detector", "none"]
    )
    agent = build_agent(args)
    assert agent.pipeline.camera.settings.resolution == (64, 48)
    assert agent.pipeline.camera.settings.warmup == 5
    assert agent.pipeline.camera.grab().shape == (48, 64, 3)

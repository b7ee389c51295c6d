"""`python -m cloud` as a user runs it: embedded PostgreSQL, health, Ctrl-C, restart."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.waiting import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0  # seconds: first start initialises the database cluster


def _start(data_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.Popen(
        [sys.executable, "-m", "cloud", "--port", str(port), "--data-dir", str(data_dir)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_healthy(port: int, process: subprocess.Popen[str]) -> httpx.Response:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"server exited: {process.stdout.read() if process.stdout else ''}"
            )
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError("server did not become healthy")


def _interrupt(process: subprocess.Popen[str], sig: int = signal.SIGINT) -> float:
    began = time.monotonic()
    process.send_signal(sig)
    process.wait(timeout=20)
    return time.monotonic() - began


def _postgres_running(pgdata: Path) -> bool:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_embedded_server_starts_stops_cleanly_and_reuses_data(pg_data_root: Path) -> None:
    data_dir = pg_data_root / "visant"
    port = free_port()
    first = _start(data_dir, port)
    assert _wait_healthy(port, first).status_code == 200
    second_port = free_port()
    second = _start(data_dir, second_port)  # shares the embedded database
    assert _wait_healthy(second_port, second).status_code == 200
    assert _interrupt(second) < 10
    assert _wait_healthy(port, first).status_code == 200, "first lost its database"
    assert _interrupt(first) < 10
    assert first.returncode == 0
    output = first.stdout.read() if first.stdout else ""
    ready_lines = [line for line in output.splitlines() if "embedded PostgreSQL" in line]
    assert len(ready_lines) == 1, output
    # initdb's and pg_ctl's ~40 lines appear only with --verbose.
    assert not re.search("initdb|Running commandline|pg_ctl_args", output), output
    assert re.search(r"embedded PostgreSQL \d+ ready in \S*pgdata", ready_lines[0])
    assert not _postgres_running(data_dir / "pgdata"), "embedded postgres left running"

    again = _start(data_dir, port)
    try:
        assert _wait_healthy(port, again).status_code == 200
        assert (data_dir / "pgdata" / "PG_VERSION").exists()
    finally:
        assert _interrupt(again, signal.SIGTERM) < 10
    assert again.returncode == 0
    assert not _postgres_running(data_dir / "pgdata")

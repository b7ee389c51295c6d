"""The benchmarks' private cloud: `python -m cloud` on a free port, started and waited for."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BENCH_SECRET = "bench-secret-key"  # noqa: S105 - the bench server's own throwaway secret
START_TIMEOUT = 60.0  # seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    database_url: str,
    port: int,
    output: IO[str] | IO[bytes] | Path,
    settings: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """`python -m cloud` on `port` against `database_url` (scheduler off unless `settings` say
    otherwise), returned once `/health` answers 200. `output` is a log file path or a stream."""
    log_path = output if isinstance(output, Path) else None
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "VISANT_SECRET_KEY": BENCH_SECRET,
        "VISANT_SCHEDULER_ENABLED": "false",
        "VISANT_LOG_LEVEL": "WARNING",
        **({"VISANT_DATA_DIR": str(log_path.parent / "data")} if log_path else {}),
        **(settings or {}),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "cloud", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log_path.open("w") if log_path else output,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            detail = log_path.read_text() if log_path else "see its output above"
            raise SystemExit(f"server exited during start: {detail}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("server did not become healthy")

"""`python -m cloud` as a real subprocess on a test database, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.factories import TEST_SECRET_KEY

PROJECT_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0  # seconds
KEEPALIVE = 1.0  # seconds


class CloudProcess:
    """`python -m cloud` on the test database, as a real subprocess."""

    def __init__(
        self, database_url: str, port: int, log: Path, env: dict[str, str] | None = None
    ) -> None:
        environment = {
            **os.environ,
            "DATABASE_URL": database_url,
            "VISANT_SECRET_KEY": TEST_SECRET_KEY,
            "VISANT_KEEPALIVE_SECONDS": str(KEEPALIVE),
            "VISANT_SCHEDULER_ENABLED": "false",
            "VISANT_DATA_DIR": str(log.parent / "data"),
            "VISANT_LOG_LEVEL": "WARNING",
            **(env or {}),
        }
        self.port = port
        self._log = log.open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cloud", "--port", str(port)],
            cwd=PROJECT_ROOT,
            env=environment,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_healthy(log)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _wait_healthy(self, log: Path) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"server exited: {log.read_text()}"
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("server did not become healthy")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=15)
        self._log.close()

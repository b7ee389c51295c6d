"""The demo's plumbing: child processes that never outlive it, the API client, a sample image."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HTTP_TIMEOUT = 10.0  # seconds, every API call
STOP_GRACE = 15.0  # seconds a child gets to exit on SIGTERM before its group is killed
POLL_STEP = 0.25  # seconds between checks while waiting


class DemoError(Exception):
    """The demo cannot go on; the message says what did not happen."""


class Clock:
    """Progress lines stamped with the seconds since the demo started."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def say(self, message: str) -> None:
        print(f"[{self.elapsed():5.1f}s] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(what: str, condition: Callable[[], Any], timeout: float) -> Any:
    """Poll `condition` until it returns something truthy; DemoError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(POLL_STEP)


class Child:
    """A child process in its own process group, logging to a file; `stop()` always reaps it."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("ab")
        # Own session: a Ctrl-C in the terminal reaches the demo only, which then stops us in order.
        self.process = subprocess.Popen(
            argv,
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Ask the process to exit, then kill its whole group if it lingers; its exit code."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)
            try:
                self.process.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                pass
        # Anything it left in its group (a helper it spawned) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        code = self.process.wait()
        self._log.close()
        return code

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def python_argv(*args: str) -> list[str]:
    return [sys.executable, *args]


def stop_orphan_postgres(pgdata: Path) -> bool:
    """Stop a PostgreSQL left running under `pgdata` (cloud killed hard); True if there was one."""
    pid_file = pgdata / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    try:
        os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown
    except (ProcessLookupError, PermissionError):
        return False
    deadline = time.monotonic() + STOP_GRACE
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(POLL_STEP)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return True


class Api:
    """The user-side API calls the demo makes, with the test user's token."""

    def __init__(self, base_url: str, token: str) -> None:
        self.client = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=HTTP_TIMEOUT,
        )

    def close(self) -> None:
        self.client.close()

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise DemoError(
                f"{response.request.method} {response.request.url.path} -> "
                f"{response.status_code} {response.text[:200]}"
            )
        return response.json()

    def trigger(self, device_id: str, label: str, ttl_seconds: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"label": label}
        if ttl_seconds is not None:
            body["ttl_seconds"] = ttl_seconds
        return self._json(self.client.post(f"/v1/devices/{device_id}/trigger", json=body))

    def trigger_status(self, trigger_id: str) -> str:
        return self._json(self.client.get(f"/v1/triggers/{trigger_id}"))["status"]

    def cancel(self, trigger_id: str) -> dict[str, Any]:
        return self._json(self.client.post(f"/v1/triggers/{trigger_id}/cancel"))

    def triggers(self, device_id: str, **filters: str) -> list[dict[str, Any]]:
        params = {"device_id": device_id, "limit": "500", **filters}
        return self._json(self.client.get("/v1/triggers", params=params))["triggers"]

    def connected(self) -> set[str]:
        devices = self._json(self.client.get("/v1/devices/connected"))["devices"]
        return {device["device_id"] for device in devices}

    def device(self, device_id: str) -> dict[str, Any]:
        return self._json(self.client.get(f"/v1/devices/{device_id}"))

    def set_config(self, device_id: str, config: dict[str, Any]) -> dict[str, Any]:
        return self._json(self.client.patch(f"/v1/devices/{device_id}", json={"config": config}))


def healthy(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def write_sample_image(path: Path) -> Path:
    """A 640x480 synthetic street scene drawn with OpenCV (no camera or download needed)."""
    import cv2
    import numpy as np

    height, width = 480, 640
    sky = np.linspace(230, 150, height // 2, dtype=np.uint8)
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[: height // 2] = np.stack([sky, sky - 20, sky - 60], axis=1)[:, None, :]
    image[height // 2 :] = (70, 80, 75)
    cv2.rectangle(image, (60, 120), (220, 300), (60, 60, 140), -1)  # a building
    cv2.rectangle(image, (400, 90), (590, 300), (120, 100, 80), -1)
    for x in range(80, 200, 40):
        cv2.rectangle(image, (x, 150), (x + 20, 180), (200, 230, 250), -1)
    cv2.circle(image, (330, 70), 35, (80, 220, 250), -1)  # the sun
    cv2.line(image, (0, 390), (width, 390), (230, 230, 230), 3)
    cv2.putText(image, "VISANT DEMO", (170, 450), cv2.FONT_HERSHEY_SIMPLEX, 1.4, (255, 255, 255), 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise DemoError(f"could not write the sample image {path}")
    return path

"""E2E helpers for the device agent: the agent as a real subprocess, and fault proxies
(tests/support/fault_proxy.py) in front of the real server."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.support.fault_proxy import FaultProxy
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]


class AgentProcess:
    """``python -m device.main_v2`` with its own state dir; output goes to a log file."""

    def __init__(self, api_url: str, device_id: str, key: str, image: Path, workdir: Path) -> None:
        self.api_url = api_url
        self.device_id = device_id
        self.key = key
        self.image = image
        self.workdir = workdir
        self.state_dir = workdir / "state"
        self.spool_dir = self.state_dir / "spool"
        self.log_path = workdir / "agent.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> AgentProcess:
        args = [
            "--api-url",
            self.api_url,
            "--device-id",
            self.device_id,
            "--camera-source",
            str(self.image),
            "--state-dir",
            str(self.state_dir),
            "--detector",
            "opencv",
            "--reconnect-delay",
            "0.5",
            "--upload-timeout",
            "5",
            *extra,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("VISANT_")}
        env["VISANT_API_KEY"] = self.key
        env["PYTHONPATH"] = str(REPO)
        log = self.log_path.open("ab")
        # VISANT_TEST_AGENT_PYTHON: run the agent under another interpreter (e.g. a 3.10 venv
        # with requirements installed, as on JetPack) while the cloud runs here.
        python = os.environ.get("VISANT_TEST_AGENT_PYTHON", sys.executable)
        self.process = subprocess.Popen(
            [python, "-m", "device.main_v2", *args],
            cwd=self.workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, timeout: float = 20.0, count: int = 1) -> None:
        wait_until(lambda: self.output.count(text) >= count, timeout, lambda: self.output)

    def spooled(self) -> int:
        return len(list(self.spool_dir.glob("*.json"))) if self.spool_dir.exists() else 0

    def signal(self, signum: int, timeout: float = 15.0) -> tuple[int, float]:
        """Send ``signum``; return (exit code, seconds until exit)."""
        assert self.process is not None
        began = time.monotonic()
        self.process.send_signal(signum)
        code = self.process.wait(timeout)
        return code, time.monotonic() - began

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def scene_jpeg(tmp_path: Path) -> Path:
    frame = np.zeros((240, 320, 3), np.uint8)
    cv2.rectangle(frame, (40, 40), (200, 180), (0, 200, 255), -1)
    path = tmp_path / "scene.jpg"
    assert cv2.imwrite(str(path), frame)
    return path


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    """``agents(api_url, device, image)`` -> an AgentProcess; all killed at teardown."""
    made: list[AgentProcess] = []

    def make(
        api_url: str, device_id: str, key: str, image: Path, name: str = "agent"
    ) -> AgentProcess:
        workdir = tmp_path / name
        workdir.mkdir(exist_ok=True)
        agent = AgentProcess(api_url, device_id, key, image, workdir)
        made.append(agent)
        return agent

    yield make
    for agent in made:
        if agent.process is not None and agent.process.poll() is None:
            with contextlib.suppress(Exception):
                agent.signal(signal.SIGTERM, 10)
        agent.kill()


@pytest.fixture
def proxy_factory() -> Iterator[Callable[[int], FaultProxy]]:
    """``proxy_factory(target_port)`` -> a FaultProxy; all closed at teardown."""
    proxies: list[FaultProxy] = []

    def make(port: int) -> FaultProxy:
        proxy = FaultProxy(port)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()


class BufferingProxy:
    """An HTTP proxy that holds each response until the upstream closes it (proxy_buffering).

    One request per connection, sent upstream with `Connection: close`: a plain response
    arrives whole when it ends; an SSE stream, which never ends, never arrives at all (not
    even its headers), as behind some corporate and cellular proxies. ``refuse_streams``
    instead resets every stream request at once while other requests pass.
    """

    def __init__(self, target_port: int, refuse_streams: bool = False) -> None:
        self.target_port = target_port
        self.refuse_streams = refuse_streams
        self.requests: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            _reset(sock)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with self._lock:
            self._open.add(client)
        try:
            request = _read_request(client)
            if request is None:
                return
            line = request.split(b"\r\n", 1)[0].decode(errors="replace")
            self.requests.append(line)
            is_stream = line.startswith("GET ") and line.split(" ")[1].endswith("/commands")
            if self.refuse_streams and is_stream:
                _reset(client)
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            with self._lock:
                self._open.add(upstream)
            upstream.settimeout(None)
            upstream.sendall(_close_after(request))
            response = b""
            while data := upstream.recv(65536):
                response += data
            client.sendall(response)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                client.close()


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        # Linger 0: close sends RST, the client sees "connection reset", not a clean EOF.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)  # wakes a pump thread blocked in recv()
    with contextlib.suppress(OSError):
        sock.close()


def _read_request(sock: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for header in head.split(b"\r\n")[1:]:
        name, _, value = header.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        body += chunk
    return head + b"\r\n\r\n" + body


def _close_after(request: bytes) -> bytes:
    head, _, body = request.partition(b"\r\n\r\n")
    lines = [h for h in head.split(b"\r\n") if not h.lower().startswith(b"connection:")]
    return b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n" + body

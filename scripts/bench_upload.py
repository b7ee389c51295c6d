"""Benchmark `POST /v1/captures`: concurrent ~150 KB JPEG uploads, multipart vs base64 JSON.

    python scripts/bench_upload.py [--count 3000] [--concurrency 32] [--devices 20]
    python scripts/bench_upload.py --url http://host:8000 --device-id CAM --device-key vsk_...

Without --url it starts its own server (`python -m cloud`) on a private embedded PostgreSQL
and data dir (deleted afterwards) with the per-device upload rate limit lifted, creates the
devices directly in the database and checks at the end that every 201 left exactly one row.
With --url it uploads as one existing device (that server's rate limit applies).
Uploads are event captures (trigger_id null): one INSERT each, the trigger path adds a row
lock and an UPDATE in the same statement. The client is a lean asyncio HTTP/1.1 keep-alive
client on pre-built request bytes, so the figures are the server's, not an HTTP library's.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

if __package__ in (None, ""):  # run as `python scripts/x.py`: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2  # noqa: E402
import httpx  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from cloud.database_url import start_embedded_postgres, stop_embedded_postgres  # noqa: E402
from cloud.db import create_sync_session_factory  # noqa: E402
from cloud.migrate import upgrade_to_head  # noqa: E402
from cloud.models import Capture, Device, Org, Trigger, TriggerStatus, TriggerType  # noqa: E402
from cloud.security import DEVICE_KEY_PREFIX, hash_secret, new_secret, new_trigger_id  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BENCH_SECRET = "bench-secret-key"  # noqa: S105 - the private bench server's own secret
TARGET_JPEG_BYTES = 150_000
REQUEST_TIMEOUT = 30.0  # seconds
START_TIMEOUT = 60.0  # seconds
WARMUP = 100  # uploads per format before measuring


@dataclass
class Phase:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    image_bytes: int = 0
    wire_bytes: int = 0
    cpu: dict[str, float] = field(default_factory=dict)  # seconds by process group

    def summary(self) -> dict[str, float | str | dict[int, int] | None]:
        ok = len(self.latencies)
        ordered = sorted(self.latencies)
        return {
            "format": self.name,
            "uploads": ok,
            "errors": self.errors,
            "uploads_per_s": round(ok / self.seconds, 1),
            "image_MB_per_s": round(ok * self.image_bytes / self.seconds / 1e6, 2),
            "wire_MB_per_s": round(ok * self.wire_bytes / self.seconds / 1e6, 2),
            "p50_ms": round(statistics.median(ordered) * 1000, 2),
            "p99_ms": round(ordered[min(ok - 1, int(ok * 0.99))] * 1000, 2),
            "cpu_ms_per_upload": {k: round(v / ok * 1000, 2) for k, v in self.cpu.items()},
        }


def realistic_jpeg(target: int = TARGET_JPEG_BYTES) -> bytes:
    """A camera-like 1280x720 frame (gradients, shapes, sensor noise) encoded near `target`."""
    rng = np.random.default_rng(7)
    height, width = 720, 1280
    ys, xs = np.mgrid[0:height, 0:width]
    frame = np.stack(
        [(xs / width * 180 + 40), (ys / height * 140 + 60), ((xs + ys) % 255) * 0.6], axis=-1
    )
    for _ in range(40):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.rectangle(frame, (x, y), (x + int(rng.integers(20, 200)), y + 80), colour, -1)
    noisy = np.clip(frame + rng.normal(0, 12, frame.shape), 0, 255).astype(np.uint8)
    best = b""
    for quality in range(95, 10, -5):
        ok, encoded = cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok
        best = encoded.tobytes()
        if len(best) <= target * 1.05:
            break
    return best


def _metadata(device_id: str, trigger_id: str | None) -> dict:
    return {
        "device_id": device_id,
        "trigger_id": trigger_id,
        "captured_at": datetime.now(UTC).isoformat(),
        "trigger_label": "bench",
        "metadata": {"bench": True},
        "detections": [{"label": "person", "confidence": 0.8, "box": [100, 100, 300, 600]}],
    }


class RequestBuilder:
    """HTTP/1.1 upload requests as byte pieces; the image (or its base64) is shared, not copied."""

    def __init__(self, host: str, image: bytes) -> None:
        self.host = host
        self.image = image
        self.encoded = base64.b64encode(image)

    def build(self, key: str, device_id: str, fmt: str, trigger_id: str | None) -> list[bytes]:
        metadata = json.dumps(_metadata(device_id, trigger_id))
        if fmt == "multipart":
            boundary = uuid.uuid4().hex
            prefix = (
                f'--{boundary}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n'
                f"{metadata}\r\n"
                f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
                f'filename="capture.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
            )
            body = [prefix.encode(), self.image, f"\r\n--{boundary}--\r\n".encode()]
            content_type = f"multipart/form-data; boundary={boundary}"
        else:
            body = [f'{metadata[:-1]}, "image_base64": "'.encode(), self.encoded, b'"}']
            content_type = "application/json"
        head = (
            f"POST /v1/captures HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {sum(map(len, body))}\r\n\r\n"
        )
        return [head.encode(), *body]


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: list[bytes]
) -> int:
    writer.writelines(request)
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def run_phase(
    host: str,
    port: int,
    make_request: Callable[[int], list[bytes]],
    count: int,
    concurrency: int,
    phase: Phase,
) -> None:
    """`count` uploads over `concurrency` keep-alive connections; fills `phase`."""
    remaining = iter(range(count))

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for index in remaining:
                request = make_request(index)
                began = time.perf_counter()
                status = await asyncio.wait_for(_exchange(reader, writer, request), REQUEST_TIMEOUT)
                if status == 201:
                    phase.latencies.append(time.perf_counter() - began)
                else:
                    phase.errors[status] = phase.errors.get(status, 0) + 1
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    phase.seconds = time.perf_counter() - began


class PrivateServer:
    """Embedded PostgreSQL + `python -m cloud` in a temporary directory."""

    def __init__(self, devices: int) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="visant-bench-upload-"))
        self.port = _free_port()
        self.database_url = start_embedded_postgres(self.root / "pgdata")
        upgrade_to_head(self.database_url)
        self.sessions = create_sync_session_factory(self.database_url)
        self.devices = self._create_devices(devices)
        env = os.environ | {
            "DATABASE_URL": self.database_url,
            "VISANT_SECRET_KEY": BENCH_SECRET,
            "VISANT_UPLOADS_PER_DEVICE_PER_MINUTE": "100000000",
            "VISANT_SCHEDULER_ENABLED": "false",
            "VISANT_LOG_LEVEL": "WARNING",
        }
        # The server's output goes to stderr: stdout carries only the JSON report.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cloud", "--port", str(self.port), "--data-dir", str(self.root)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=sys.stderr,
        )
        _wait_healthy(f"http://127.0.0.1:{self.port}", self.process)

    def _create_devices(self, count: int) -> list[tuple[str, str]]:
        devices = []
        with self.sessions() as session:
            org = Org(name=f"bench-{uuid.uuid4().hex[:6]}")
            session.add(org)
            session.flush()
            for index in range(count):
                key = new_secret(DEVICE_KEY_PREFIX)
                device_id = f"BENCH_{index:03d}"
                session.add(
                    Device(
                        device_id=device_id,
                        org_id=org.org_id,
                        key_hash=hash_secret(key, BENCH_SECRET),
                        key_prefix=key[:12],
                        config={"evaluation": {"rules": [{"name": "p", "labels": ["person"]}]}},
                    )
                )
                devices.append((device_id, key))
            session.commit()
        return devices

    def create_triggers(self, count: int) -> list[tuple[str, str, str]]:
        """`count` sent triggers spread over the devices: (device_id, key, trigger_id)."""
        now = datetime.now(UTC)
        rows, plan = [], []
        for index in range(count):
            device_id, key = self.devices[index % len(self.devices)]
            trigger_id = new_trigger_id()
            plan.append((device_id, key, trigger_id))
            rows.append(
                {
                    "trigger_id": trigger_id,
                    "device_id": device_id,
                    "trigger_type": TriggerType.MANUAL,
                    "status": TriggerStatus.SENT,
                    "scheduled_at": now,
                    "sent_at": now,
                    "expires_at": now + timedelta(hours=1),
                }
            )
        with self.sessions() as session:
            session.execute(sa.insert(Trigger.__table__), rows)
            session.commit()
        return plan

    def executed_triggers(self) -> int:
        with self.sessions() as session:
            query = sa.select(sa.func.count()).where(
                Trigger.status == TriggerStatus.EXECUTED, Trigger.capture_id.is_not(None)
            )
            return session.scalar(query) or 0

    def stored_captures(self) -> int:
        with self.sessions() as session:
            return session.scalar(sa.select(sa.func.count()).select_from(Capture)) or 0

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far by the server, its PostgreSQL and this client."""

        def used(process: psutil.Process) -> float:
            times = process.cpu_times()
            return times.user + times.system

        postgres = 0.0
        pgdata = str(self.root / "pgdata")
        for process in psutil.process_iter(["cmdline"]):
            if pgdata in " ".join(process.info["cmdline"] or []):
                with contextlib.suppress(psutil.Error):  # postmaster, live and exited backends
                    own = process.cpu_times()
                    postgres = used(process) + own.children_user + own.children_system
                    postgres += sum(used(child) for child in process.children(recursive=True))
                break
        return {
            "server": used(psutil.Process(self.process.pid)),
            "postgres": postgres,
            "client": used(psutil.Process()),
        }

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.sessions.kw["bind"].dispose()
        stop_embedded_postgres()
        shutil.rmtree(self.root, ignore_errors=True)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("server exited during start")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not become healthy")


async def bench(args: argparse.Namespace) -> int:
    image = realistic_jpeg()
    server = None
    if args.url:
        if not (args.device_id and args.device_key):
            print("--url needs --device-id and --device-key", file=sys.stderr)
            return 2
        url = args.url
        devices = [(args.device_id, args.device_key)]
    else:
        server = PrivateServer(args.devices)
        url = f"http://127.0.0.1:{server.port}"
        devices = server.devices
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    results = []
    warm_stored = 0
    builder = RequestBuilder(parts.netloc, image)
    try:
        for fmt in ("multipart", "json"):
            if args.triggers and server:
                plan = server.create_triggers(WARMUP + args.count)

                def make_request(
                    index: int, fmt: str = fmt, plan: list = plan, offset: int = 0
                ) -> list[bytes]:
                    device_id, key, trigger_id = plan[offset + index]
                    return builder.build(key, device_id, fmt, trigger_id)

                warm_request = make_request
                measured_request = functools.partial(make_request, offset=WARMUP)
            else:
                prebuilt = [builder.build(k, d, fmt, None) for d, k in devices]
                warm_request = measured_request = lambda i, p=prebuilt: p[i % len(p)]
            warm = Phase("warmup")
            await run_phase(host, port, warm_request, WARMUP, args.concurrency, warm)
            warm_stored += len(warm.latencies)
            wire = sum(map(len, measured_request(0)))
            phase = Phase(fmt, image_bytes=len(image), wire_bytes=wire)
            cpu_before = server.cpu_seconds() if server else {}
            await run_phase(host, port, measured_request, args.count, args.concurrency, phase)
            if server:
                cpu_after = server.cpu_seconds()
                phase.cpu = {k: cpu_after[k] - cpu_before[k] for k in cpu_before}
            results.append(phase.summary())
        stored = server.stored_captures() if server else None
        executed = server.executed_triggers() if server else None
    finally:
        if server:
            server.close()
    multipart, as_json = results
    report = {
        "image_bytes": len(image),
        "concurrency": args.concurrency,
        "devices": len(devices),
        "uploads_close_triggers": bool(args.triggers and server),
        "cpus": os.cpu_count(),
        "results": results,
        "multipart_over_json_uploads_per_s": round(
            multipart["uploads_per_s"] / as_json["uploads_per_s"], 2
        ),
    }
    if stored is not None:
        expected = warm_stored + sum(r["uploads"] for r in results)
        report["stored_rows"] = stored
        report["stored_rows_ok"] = stored == expected
        if args.triggers:
            report["triggers_executed_ok"] = executed == expected
    print(json.dumps(report, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench_upload.py", description=__doc__)
    parser.add_argument("--count", type=int, default=3000, help="uploads per format")
    parser.add_argument("--concurrency", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--devices", type=int, default=20, help="devices (private server)")
    parser.add_argument(
        "--triggers",
        action="store_true",
        help="each upload closes its own sent trigger (private server only)",
    )
    parser.add_argument("--url", help="an already running server instead of a private one")
    parser.add_argument("--device-id", help="with --url: the device to upload as")
    parser.add_argument("--device-key", help="with --url: that device's key")
    return asyncio.run(bench(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())

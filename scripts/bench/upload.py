"""Benchmark `POST /v1/captures`: concurrent ~150 KB JPEG uploads, multipart vs base64 JSON.

    python -m scripts.bench.upload [--count 3000] [--concurrency 32] [--devices 20] [--triggers]
    python -m scripts.bench.upload ... --json      # only the final JSON line
    python -m scripts.bench.upload --url http://host:8000 --device-id CAM --device-key vsk_...

Without --url it starts its own server (`python -m cloud`) on a private embedded PostgreSQL
and data dir (deleted afterwards) with the per-device upload rate limit lifted, creates the
devices directly in the database and checks at the end that every 201 left exactly one row.
With --url it uploads as one existing device (that server's rate limit applies).
Uploads are event captures (trigger_id null, one INSERT each) unless --triggers: then each
upload closes its own `sent` trigger (row lock, INSERT + UPDATE in one statement) and the
end check also counts the executed triggers. Each upload carries its own capture_id, as the
agent's do, and a person its device's rule matches: each device's first upload raises an
alert, the rest fall inside its cooldown. The floor, measured in the same run with the
same client and multipart bodies, is scripts/bench/upload_floor.py (a bare Starlette endpoint
that parses the body and writes the file); the final JSON line carries `uploads_per_s`,
`floor_uploads_per_s`, `ratio` and `server_cpu_ms_per_upload` (multipart). The client is a
lean asyncio HTTP/1.1 keep-alive client on pre-built request bytes, so the figures are the
server's, not an HTTP library's.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import cv2
import numpy as np

from scripts.bench.profiler import start_profiler
from scripts.bench.upload_floor import FloorServer
from scripts.bench.upload_server import PrivateServer

TARGET_JPEG_BYTES = 150_000
REQUEST_TIMEOUT = 30.0  # seconds
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
        # Each upload its own id, as the agent's outbox sends (device/outbox.py): the cloud
        # looks for an earlier try of it in the admission statement.
        "capture_id": uuid.uuid4().hex,
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


def warm_rate(warm: Phase) -> float:
    """The warm-up's uploads/s: sizes a profile to fit inside the measured phase."""
    return len(warm.latencies) / warm.seconds if warm.seconds else 0.0


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

                def cycled(index: int, fmt: str = fmt) -> list[bytes]:
                    device_id, key = devices[index % len(devices)]
                    return builder.build(key, device_id, fmt, None)

                warm_request = measured_request = cycled
            warm = Phase("warmup")
            await run_phase(host, port, warm_request, WARMUP, args.concurrency, warm)
            warm_stored += len(warm.latencies)
            wire = sum(map(len, measured_request(0)))
            phase = Phase(fmt, image_bytes=len(image), wire_bytes=wire)
            cpu_before = server.cpu_seconds() if server else {}
            profiler = None
            if args.py_spy and server and fmt == "multipart":
                seconds = args.count / max(1.0, warm_rate(warm)) * 0.8
                profiler = start_profiler(server.process.pid, args.py_spy, seconds)
            await run_phase(host, port, measured_request, args.count, args.concurrency, phase)
            if profiler is not None:
                await asyncio.to_thread(profiler.wait)
            if server:
                cpu_after = server.cpu_seconds()
                phase.cpu = {k: cpu_after[k] - cpu_before[k] for k in cpu_before}
            results.append(phase.summary())
        stored = server.stored_captures() if server else None
        executed = server.executed_triggers() if server else None
    finally:
        if server:
            server.close()
    floor = await measure_floor(builder, devices, args, durable=False)
    durable_floor = await measure_floor(builder, devices, args, durable=True)
    multipart, as_json = results
    ours_cpu = multipart["cpu_ms_per_upload"].get("server")
    report = {
        "uploads_per_s": multipart["uploads_per_s"],
        "floor_uploads_per_s": floor["uploads_per_s"],
        "ratio": round(multipart["uploads_per_s"] / floor["uploads_per_s"], 2),
        "server_cpu_ms_per_upload": ours_cpu,
        "floor_server_cpu_ms_per_upload": floor["cpu_ms_per_upload"]["server"],
        "durable_floor_uploads_per_s": durable_floor["uploads_per_s"],
        "durable_ratio": round(multipart["uploads_per_s"] / durable_floor["uploads_per_s"], 2),
        "postgres_cpu_ms_per_upload": multipart["cpu_ms_per_upload"].get("postgres"),
        "image_bytes": len(image),
        "concurrency": args.concurrency,
        "devices": len(devices),
        "uploads_close_triggers": bool(args.triggers and server),
        "cpus": os.cpu_count(),
        "results": results,
        "floor": floor,
        "durable_floor": durable_floor,
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
    if not args.json:
        for row in (*results, floor, durable_floor):
            cpu = row["cpu_ms_per_upload"]
            print(
                f"{row['format']:>15}: {row['uploads_per_s']:7.1f} uploads/s  "
                f"p50 {row['p50_ms']:6.2f} ms  p99 {row['p99_ms']:7.2f} ms  "
                f"cpu ms/upload {cpu}  errors {row['errors']}"
            )
        print(
            f"multipart ours/floor: {report['uploads_per_s']} / {report['floor_uploads_per_s']}"
            f" uploads/s = ratio {report['ratio']} (goal >= 0.6); server CPU "
            f"{ours_cpu} ms/upload (goal <= 2, floor {report['floor_server_cpu_ms_per_upload']})"
        )
        print(
            f"multipart ours/durable floor (fsync per file): {report['uploads_per_s']} / "
            f"{report['durable_floor_uploads_per_s']} uploads/s = ratio {report['durable_ratio']}"
        )
    print(json.dumps(report))
    return 0


async def measure_floor(
    builder: RequestBuilder,
    devices: list[tuple[str, str]],
    args: argparse.Namespace,
    durable: bool,
) -> dict:
    """The same client and multipart bodies against scripts/bench/upload_floor.py (`durable`:
    with --fsync)."""
    floor = FloorServer(durable)
    try:

        def request(index: int) -> list[bytes]:
            device_id, key = devices[index % len(devices)]
            return builder.build(key, device_id, "multipart", None)

        await run_phase("127.0.0.1", floor.port, request, WARMUP, args.concurrency, Phase("w"))
        name = "durable floor" if durable else "floor multipart"
        phase = Phase(name, image_bytes=len(builder.image))
        phase.wire_bytes = sum(map(len, request(0)))
        before = floor.cpu_seconds()
        await run_phase("127.0.0.1", floor.port, request, args.count, args.concurrency, phase)
        after = floor.cpu_seconds()
        phase.cpu = {k: after[k] - before[k] for k in before}
        return phase.summary()
    finally:
        floor.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench/upload.py", description=__doc__)
    parser.add_argument("--count", type=int, default=3000, help="uploads per format")
    parser.add_argument("--concurrency", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--devices", type=int, default=20, help="devices (private server)")
    parser.add_argument(
        "--triggers",
        action="store_true",
        help="each upload closes its own sent trigger (private server only)",
    )
    parser.add_argument("--json", action="store_true", help="print only the final JSON line")
    parser.add_argument(
        "--py-spy", metavar="FILE", help="profile the server in the multipart phase (raw)"
    )
    parser.add_argument("--url", help="an already running server instead of a private one")
    parser.add_argument("--device-id", help="with --url: the device to upload as")
    parser.add_argument("--device-key", help="with --url: that device's key")
    return asyncio.run(bench(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark the console: fleet page time at 1,000 and 10,000 devices, capture to browser
event latency, memory per open browser stream.

    python -m scripts.bench.console [--requests 200] [--uploads 200] [--streams 500] [--json]

Starts `python -m cloud` on a private embedded PostgreSQL (deleted afterwards) with two orgs
written by bulk SQL: 1,000 and 10,000 devices, each with one stored capture (so every tile has
a thumbnail). The session cookie is a user token, as a sign-in would set. Phases:
1. fleet: `GET /fleet` (the first page, `console_page_size` tiles) `--requests` times per
   fleet over one keep-alive connection; the time is the client's, on loopback.
   Floor: the same client fetching the same number of bytes from a bare Starlette endpoint
   (scripts/bench/console_floor.py) under the same uvicorn.
2. capture to event: `/console/events` open with the session cookie (httpx-sse); `--uploads`
   real JPEG uploads one after another; latency is from the upload's start to its `capture`
   event arriving on the stream (an upper bound of stored -> event: it includes the upload).
   Floor: the upload's own response time.
3. streams: `--streams` browser streams opened at once (each reads its `hello`); the server's
   RSS before and after, per stream.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import psutil
import psycopg2
import psycopg2.extras
from httpx_sse import aconnect_sse

from cloud.core.database_url import libpq_dsn, start_embedded_postgres, stop_embedded_postgres
from cloud.core.migrate import upgrade_to_head
from scripts.bench.push_fleet import create_fleet, percentile, raise_fd_limit
from scripts.bench.server import BENCH_SECRET, free_port, start_server

WARMUP = 20  # requests before measuring
FLEETS = (1_000, 10_000)
EVENT_WAIT = 10.0  # seconds at most for one capture's event
STREAM_SETTLE = 2.0  # seconds after the last stream opened before RSS is read


def add_captures(url: str, devices: list[str]) -> None:
    """One capture row per device (the tiles' thumbnails; the page reads no image bytes)."""
    connection = psycopg2.connect(libpq_dsn(url))
    with connection, connection.cursor() as cursor:
        psycopg2.extras.execute_values(
            cursor,
            "INSERT INTO captures (record_id, device_id, captured_at, trigger_type, "
            "evaluation_status, snapshot_key, content_type, size_bytes, width, height, sha256) "
            "VALUES %s",
            [(f"cap_{uuid.uuid4().hex}", d, "manual", "bench/none.jpg", "0" * 64) for d in devices],
            template="(%s, %s, now(), %s, 'completed', %s, 'image/jpeg', 1000, 640, 480, %s)",
            page_size=1000,
        )
    connection.close()


def jpeg(seed: int) -> bytes:
    frame = np.random.default_rng(seed).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return encoded.tobytes()


def timed_gets(
    base: str, path: str, cookies: dict[str, str], count: int
) -> tuple[list[float], bytes]:
    """Milliseconds of `count` sequential GETs (after a warm-up) and the last body."""
    times: list[float] = []
    headers = {"Accept": "text/html"}
    with httpx.Client(base_url=base, cookies=cookies, headers=headers, timeout=30) as client:
        body = b""
        for index in range(WARMUP + count):
            began = time.perf_counter()
            response = client.get(path)
            elapsed = (time.perf_counter() - began) * 1000
            if response.status_code != 200:
                raise SystemExit(f"GET {path}: {response.status_code} {response.text[:200]}")
            body = response.content
            if index >= WARMUP:
                times.append(elapsed)
    return times, body


def start_floor(root: Path, body: bytes) -> tuple[subprocess.Popen[bytes], str]:
    page = root / "floor-page.html"
    page.write_bytes(body)
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scripts.bench.console_floor",
            "--port",
            str(port),
            "--body",
            str(page),
        ],
        cwd=Path(__file__).resolve().parents[2],
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                return process, base
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("floor server did not start")


async def capture_to_event(
    base: str, cookies: dict[str, str], device: tuple[str, str], count: int
) -> tuple[list[float], list[float]]:
    """(upload start -> its event, upload response time) in ms for `count` uploads."""
    device_id, key = device
    arrived: dict[str, float] = {}
    ready = asyncio.Event()

    async def listen(client: httpx.AsyncClient) -> None:
        async with aconnect_sse(client, "GET", "/console/events") as source:
            async for event in source.aiter_sse():
                if event.event == "hello":
                    ready.set()
                elif event.event == "capture":
                    arrived[json.loads(event.data)["capture_id"]] = time.perf_counter()

    latencies: list[float] = []
    responses: list[float] = []
    images = [jpeg(seed) for seed in range(8)]
    async with (
        httpx.AsyncClient(base_url=base, cookies=cookies, timeout=None) as browser,
        httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as agent,
    ):
        listener = asyncio.create_task(listen(browser))
        await asyncio.wait_for(ready.wait(), 30)
        for index in range(count):
            metadata = {
                "device_id": device_id,
                "captured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "metadata": {"bench": index},
                "detections": [],
            }
            files = {"image": ("c.jpg", images[index % len(images)], "image/jpeg")}
            began = time.perf_counter()
            response = await agent.post(
                "/v1/captures", files=files, data={"metadata": json.dumps(metadata)}
            )
            responded = time.perf_counter()
            if response.status_code != 201:
                raise SystemExit(f"upload: {response.status_code} {response.text[:200]}")
            record_id = response.json()["record_id"]
            deadline = time.monotonic() + EVENT_WAIT
            while record_id not in arrived:
                if time.monotonic() > deadline:
                    raise SystemExit(f"no capture event for {record_id} within {EVENT_WAIT}s")
                await asyncio.sleep(0.001)
            latencies.append((arrived[record_id] - began) * 1000)
            responses.append((responded - began) * 1000)
        listener.cancel()
    return latencies, responses


async def stream_memory(base: str, cookies: dict[str, str], pid: int, count: int) -> float:
    """KiB of server RSS per open browser stream (`count` opened at once)."""
    process = psutil.Process(pid)
    before = process.memory_info().rss
    opened = 0
    all_open = asyncio.Event()
    hold = asyncio.Event()
    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=0)

    async def one(client: httpx.AsyncClient) -> None:
        nonlocal opened
        async with aconnect_sse(client, "GET", "/console/events") as source:
            async for event in source.aiter_sse():
                if event.event == "hello":
                    opened += 1
                    if opened == count:
                        all_open.set()
                    await hold.wait()
                    return

    async with httpx.AsyncClient(
        base_url=base, cookies=cookies, timeout=None, limits=limits
    ) as client:
        tasks = [asyncio.create_task(one(client)) for _ in range(count)]
        await asyncio.wait_for(all_open.wait(), 120)
        await asyncio.sleep(STREAM_SETTLE)
        after = process.memory_info().rss
        hold.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    return (after - before) / 1024 / count


def summary(times: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(times, 0.5), 2),
        "p95": round(percentile(times, 0.95), 2),
        "p99": round(percentile(times, 0.99), 2),
    }


def bench(args: argparse.Namespace) -> dict[str, Any]:
    raise_fd_limit()
    root = Path(tempfile.mkdtemp(prefix="visant-bench-console-"))
    database_url = start_embedded_postgres(root / "pgdata")
    server = floor = None
    try:
        upgrade_to_head(database_url)
        fleets = {}
        for size in FLEETS:
            token, devices = create_fleet(database_url, size, BENCH_SECRET)
            add_captures(database_url, [d for d, _ in devices])
            fleets[size] = (token, devices)
        port = free_port()
        settings = {
            "VISANT_DATA_DIR": str(root / "data"),
            "VISANT_CONSOLE_STREAMS_PER_USER": str(args.streams + 10),
            "VISANT_UPLOADS_PER_DEVICE_PER_MINUTE": "100000",
        }
        server = start_server(database_url, port, sys.stderr, settings)
        base = f"http://127.0.0.1:{port}"
        report: dict[str, Any] = {}
        body = b""
        for size, (token, _) in fleets.items():
            times, body = timed_gets(base, "/fleet", {"visant_session": token}, args.requests)
            stats = summary(times)
            report[f"fleet_p50_ms_{size}"] = stats["p50"]
            report[f"fleet_p95_ms_{size}"] = stats["p95"]
        report["fleet_page_bytes"] = len(body)
        floor, floor_base = start_floor(root, body)
        floor_times, _ = timed_gets(floor_base, "/page", {}, args.requests)
        floor_stats = summary(floor_times)
        report["floor_p50_ms"] = floor_stats["p50"]
        report["floor_p95_ms"] = floor_stats["p95"]
        report["floor"] = "bare Starlette endpoint, same bytes, same uvicorn, same client"
        for size in FLEETS:
            report[f"fleet_ratio_{size}"] = round(
                report[f"fleet_p95_ms_{size}"] / floor_stats["p95"], 1
            )
        token, devices = fleets[FLEETS[0]]
        cookies = {"visant_session": token}
        latencies, responses = asyncio.run(
            capture_to_event(base, cookies, devices[0], args.uploads)
        )
        event = summary(latencies)
        upload = summary(responses)
        report["capture_to_event_p50_ms"] = event["p50"]
        report["capture_to_event_p99_ms"] = event["p99"]
        report["upload_response_p50_ms"] = upload["p50"]
        report["upload_response_p99_ms"] = upload["p99"]
        report["capture_event_ratio_p50"] = round(event["p50"] / upload["p50"], 2)
        report["kib_per_browser_stream"] = round(
            asyncio.run(stream_memory(base, cookies, server.pid, args.streams)), 1
        )
        report.update(
            requests=args.requests,
            uploads=args.uploads,
            streams=args.streams,
            fleet_goal_met=max(report[f"fleet_p95_ms_{s}"] for s in FLEETS) < 100,
            event_goal_met=event["p99"] < 1000,
        )
        return report
    finally:
        for process in (server, floor):
            if process is not None:
                process.terminate()
                process.wait(30)
        stop_embedded_postgres()
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench.console", description=__doc__)
    parser.add_argument("--requests", type=int, default=200, help="fleet page requests per fleet")
    parser.add_argument("--uploads", type=int, default=200, help="uploads for capture -> event")
    parser.add_argument("--streams", type=int, default=500, help="browser streams held open")
    parser.add_argument("--json", action="store_true", help="print only the final JSON line")
    args = parser.parse_args(argv)
    report = bench(args)
    if not args.json:
        for size in FLEETS:
            print(
                f"fleet page, {size} devices: p50 {report[f'fleet_p50_ms_{size}']} ms, "
                f"p95 {report[f'fleet_p95_ms_{size}']} ms; floor p95 {report['floor_p95_ms']} ms "
                f"({report['fleet_page_bytes']} bytes); ratio {report[f'fleet_ratio_{size}']}"
            )
        print(
            f"capture -> browser event: p50 {report['capture_to_event_p50_ms']} ms, "
            f"p99 {report['capture_to_event_p99_ms']} ms; floor (the upload's own response) "
            f"p50 {report['upload_response_p50_ms']} ms; ratio {report['capture_event_ratio_p50']}"
        )
        print(f"memory per open browser stream: {report['kib_per_browser_stream']} KiB")
    print(json.dumps(report))
    return 0 if report["fleet_goal_met"] and report["event_goal_met"] else 1


if __name__ == "__main__":
    sys.exit(main())

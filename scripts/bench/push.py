"""Benchmark command push: N idle SSE streams, manual triggers at a steady rate, latency/RSS/CPU.

    python -m scripts.bench.push [--devices 2000] [--rate 100] [--duration 20]
    python -m scripts.bench.push --url http://127.0.0.1:8000   # a running server (see below)

Without --url it starts `python -m cloud` itself on a fresh database (on `DATABASE_URL`'s
server, else an embedded PostgreSQL in a temporary directory), keepalive 15 s, scheduler off.
With --url, DATABASE_URL must name that server's database and VISANT_SECRET_KEY its secret
(devices and a user token are written straight into the database), and --server-pid lets the
script read the server's RSS and CPU. Devices have acknowledged their config, so a stream
carries only the triggers fired here. Latency is from just before the trigger API call to the
event's `id:` line read by this process; both clocks are this process's `perf_counter`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg2
import psycopg2.extras

from cloud.core.database_url import (
    create_database,
    libpq_dsn,
    start_embedded_postgres,
    stop_embedded_postgres,
)
from cloud.core.migrate import upgrade_to_head
from cloud.core.security import DEVICE_KEY_PREFIX, USER_TOKEN_PREFIX, hash_secret, new_secret
from scripts.bench.push_clients import RawHttpPool, StreamClient
from scripts.bench.server import BENCH_SECRET, start_server

SETTLE_SECONDS = 5.0  # idle time before reading RSS (and idle CPU over it)
DRAIN_SECONDS = 5.0  # wait for late events after the last trigger
API_CONNECTIONS = 64  # keep-alive connections used to fire triggers


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def create_fleet(
    url: str, count: int, secret: str, config: dict[str, Any] | None = None
) -> tuple[str, list[tuple[str, str]]]:
    """An org, a user token and `count` devices (config acknowledged); returns token, devices.

    `config` (default `{}`) is every device's acknowledged config; with a trigger schedule the
    devices stay unscheduled (`next_trigger_at` NULL) until the caller sets their first slot.
    """
    config_json = json.dumps(config or {})
    connection = psycopg2.connect(libpq_dsn(url))
    org_id, user_id = str(uuid.uuid4()), str(uuid.uuid4())
    token = new_secret(USER_TOKEN_PREFIX)
    tag = uuid.uuid4().hex[:6]
    devices = [(f"BENCH_{tag}_{i:05d}", new_secret(DEVICE_KEY_PREFIX)) for i in range(count)]
    with connection, connection.cursor() as cursor:
        cursor.execute("INSERT INTO orgs (org_id, name) VALUES (%s, %s)", (org_id, f"bench-{tag}"))
        cursor.execute(
            "INSERT INTO users (user_id, org_id, email, password_hash, role, is_active) "
            "VALUES (%s, %s, %s, 'x', 'admin', true)",
            (user_id, org_id, f"bench-{tag}@example.test"),
        )
        cursor.execute(
            "INSERT INTO user_tokens (token_id, user_id, token_hash, expires_at) "
            "VALUES (%s, %s, %s, %s)",
            (
                str(uuid.uuid4()),
                user_id,
                hash_secret(token, secret),
                datetime.now(UTC) + timedelta(days=1),
            ),
        )
        psycopg2.extras.execute_values(
            cursor,
            "INSERT INTO devices (device_id, org_id, status, config, config_version, "
            "reported_config_version, key_hash, key_prefix) VALUES %s",
            [
                (d, org_id, "active", config_json, 1, 1, hash_secret(k, secret), k[:12])
                for d, k in devices
            ],
            page_size=1000,
        )
    connection.close()
    return token, devices


async def fire(
    base_url: str, token: str, devices: list[tuple[str, str]], rate: float, duration: float
) -> tuple[dict[str, float], dict[str, int]]:
    """Fire manual triggers at `rate`/s for `duration` s; returns start times and API statuses."""
    started: dict[str, float] = {}
    statuses: dict[str, int] = {}
    answered: list[float] = []
    url = httpx.URL(base_url)
    pool = RawHttpPool(url.host, url.port or 80, API_CONNECTIONS)
    authorization = f"Bearer {token}"

    async def one(index: int) -> None:
        device_id = devices[index % len(devices)][0]
        began = time.perf_counter()
        try:
            status, payload = await pool.post_json(
                f"/v1/devices/{device_id}/trigger", authorization, b"{}"
            )
            body = json.loads(payload)
            key = body.get("status", str(status))
            if "trigger_id" in body:
                started[body["trigger_id"]] = began
                answered.append((time.perf_counter() - began) * 1000)
        except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
            key = type(exc).__name__
        statuses[key] = statuses.get(key, 0) + 1

    total = int(rate * duration)
    tasks = []
    origin = time.perf_counter()
    for index in range(total):
        delay = origin + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index)))
    await asyncio.gather(*tasks)
    pool.close()
    if answered:
        p50, p99 = percentile(answered, 0.5), percentile(answered, 0.99)
        print(f"trigger API response time (ms): p50 {p50:.1f}  p99 {p99:.1f}")
    return started, statuses


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def bench(
    args: argparse.Namespace, base_url: str, database_url: str, pid: int | None
) -> None:
    server = psutil.Process(pid) if pid else None
    me = psutil.Process()
    token, devices = create_fleet(database_url, args.devices, args.secret)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:  # warm the routes
        await client.get("/v1/devices/connected", headers={"Authorization": f"Bearer {token}"})
    await asyncio.sleep(1)
    rss_before = server.memory_info().rss if server else 0
    url = httpx.URL(base_url)
    streams = StreamClient(url.host, url.port or 80)
    began = time.perf_counter()
    await streams.open_all(devices)
    connect_seconds = time.perf_counter() - began
    print(f"streams: {streams.opened} open, {streams.failed} failed in {connect_seconds:.1f} s")
    idle_cpu = sum(server.cpu_times()[:2]) if server else 0.0
    await asyncio.sleep(SETTLE_SECONDS)
    idle_cpu = (sum(server.cpu_times()[:2]) - idle_cpu) if server else 0.0
    rss_after = server.memory_info().rss if server else 0
    server_cpu = sum(server.cpu_times()[:2]) if server else 0.0
    my_cpu = sum(me.cpu_times()[:2])
    wall = time.perf_counter()
    started, statuses = await fire(
        base_url, token, devices[: streams.opened], args.rate, args.duration
    )
    fire_wall = time.perf_counter() - wall
    for _ in range(int(DRAIN_SECONDS / 0.1)):  # late events: poll the readers' dict
        if set(started) <= set(streams.received):
            break
        await asyncio.sleep(0.1)
    server_cpu = (sum(server.cpu_times()[:2]) - server_cpu) if server else 0.0
    my_cpu = sum(me.cpu_times()[:2]) - my_cpu
    latencies = [
        (streams.received[tid] - t0) * 1000
        for tid, t0 in started.items()
        if tid in streams.received
    ]
    lost = len(started) - len(latencies)
    if args.timeline and latencies:
        buckets: dict[int, list[float]] = {}
        for tid, t0 in started.items():
            if tid in streams.received:
                buckets.setdefault(int(t0 - wall), []).append((streams.received[tid] - t0) * 1000)
        print(
            "per second of firing, max latency (ms):",
            [round(max(b)) for _, b in sorted(buckets.items())],
        )
    print(
        f"triggers: {len(started)} fired at {args.rate}/s over {fire_wall:.1f} s; "
        f"API statuses {statuses}"
    )
    print(f"delivered: {len(latencies)}  lost: {lost}")
    if latencies:
        p50, p95, p99 = (percentile(latencies, f) for f in (0.50, 0.95, 0.99))
        print(
            f"latency API call -> event (ms): p50 {p50:.1f}  p95 {p95:.1f}  p99 {p99:.1f}  "
            f"max {max(latencies):.1f}  mean {statistics.fmean(latencies):.1f}"
        )
    if server:
        per_stream = (rss_after - rss_before) / max(streams.opened, 1) / 1024
        print(
            f"server RSS: {rss_before / 2**20:.0f} MiB before streams, {rss_after / 2**20:.0f} MiB "
            f"with {streams.opened} idle streams -> {per_stream:.1f} KiB per idle stream"
        )
        print(
            f"server CPU idle with the streams open (keepalives): "
            f"{100 * idle_cpu / SETTLE_SECONDS:.0f}% of one core"
        )
        print(f"server CPU while firing: {100 * server_cpu / fire_wall:.0f}% of one core")
    print(f"load generator CPU while firing: {100 * my_cpu / fire_wall:.0f}% of one core")
    await streams.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=2000, help="idle streams to open")
    parser.add_argument("--rate", type=float, default=100.0, help="manual triggers per second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of firing")
    parser.add_argument("--url", help="a running server instead of starting one")
    parser.add_argument("--timeline", action="store_true", help="print max latency per second")
    parser.add_argument("--server-pid", type=int, help="with --url: the server's pid (RSS, CPU)")
    args = parser.parse_args()
    args.secret = os.environ.get("VISANT_SECRET_KEY", BENCH_SECRET) if args.url else BENCH_SECRET
    print(f"file descriptor limit raised to {raise_fd_limit()}")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if args.url:
        database_url = os.environ.get("DATABASE_URL")
        if not database_url:
            raise SystemExit("--url needs DATABASE_URL (the server's database)")
        asyncio.run(bench(args, args.url, database_url, args.server_pid))
        return 0
    server_url = os.environ.get("DATABASE_URL")
    embedded = not server_url
    workdir = Path(tempfile.mkdtemp(prefix="visant-bench-push-"))
    if embedded:
        server_url = start_embedded_postgres(workdir / "pg")
    process = None
    try:
        database_url = create_database(server_url, "visant_bench")
        upgrade_to_head(database_url)
        port = 18000 + os.getpid() % 1000
        process = start_server(database_url, port, workdir / "server.log")
        print(f"server pid {process.pid} on port {port}; database {database_url}", flush=True)
        asyncio.run(bench(args, f"http://127.0.0.1:{port}", database_url, process.pid))
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
        if embedded:
            stop_embedded_postgres()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`bench_scheduler.py --sent N`: scheduled triggers created and marked sent by one real server.

Starts `python -m cloud` (scheduler on, tick 1 s, keepalive 15 s) on its own database, registers
N devices on a 1-second interval schedule, opens N raw-socket SSE streams (bench_push's
clients), starts every schedule on the same whole second and, after a warm-up, counts over the
window from the database: scheduled triggers created (`created_at`), marked sent (`sent_at`),
slots skipped (`devices.skipped_slots`), and the events the clients read. A 1-second slot
expires the previous slot's trigger (scheduled triggers expire no later than their next slot)
and the clients never execute, so every slot of every connected device can become a trigger:
N triggers/s is the offered load.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import psycopg2

from cloud.core.database_url import create_database, libpq_dsn
from cloud.core.migrate import upgrade_to_head
from scripts.bench.machine_cpu import own_cpu, postgres_cpu, postgres_cpu_between
from scripts.bench.push import create_fleet, raise_fd_limit
from scripts.bench.push_clients import StreamClient
from scripts.bench.server import BENCH_SECRET, start_server

EVERY_SECOND = {"trigger": {"enabled": True, "interval_seconds": 1}}
SERVER_SETTINGS = {
    "VISANT_SCHEDULER_ENABLED": "true",
    "VISANT_SCHEDULER_TICK_SECONDS": "1",
    "VISANT_KEEPALIVE_SECONDS": "15",
}
WARMUP_SECONDS = 5.0  # schedules run this long before the window opens
DRAIN_SECONDS = 3.0  # after the window: late sent marks and events still count for its triggers

_WINDOW_FIGURES = """
SELECT count(*) FILTER (WHERE created_at >= %(t0)s AND created_at < %(t1)s),
       count(*) FILTER (WHERE sent_at >= %(t0)s AND sent_at < %(t1)s),
       percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY sent_at - scheduled_at)
           FILTER (WHERE created_at >= %(t0)s AND created_at < %(t1)s AND sent_at IS NOT NULL),
       percentile_cont(ARRAY[0, 0.5, 1]) WITHIN GROUP (ORDER BY created_at - scheduled_at)
           FILTER (WHERE created_at >= %(t0)s AND created_at < %(t1)s),
       count(*) FILTER (WHERE created_at >= %(t0)s AND created_at < %(t1)s AND sent_at IS NULL)
FROM scheduled_triggers WHERE trigger_type = 'scheduled'
"""
_PER_SECOND = """
SELECT s, count(*) FILTER (WHERE date_trunc('second', created_at) = s),
          count(*) FILTER (WHERE date_trunc('second', sent_at) = s)
FROM scheduled_triggers,
     generate_series(date_trunc('second', %(t0)s::timestamptz),
                     %(t1)s::timestamptz - interval '1 second', interval '1 second') AS s
WHERE trigger_type = 'scheduled' AND (created_at >= %(t0)s OR sent_at >= %(t0)s)
GROUP BY s ORDER BY s
"""
_STATUSES = """
SELECT status, count(*) FROM scheduled_triggers
WHERE trigger_type = 'scheduled' AND created_at >= %(t0)s AND created_at < %(t1)s
GROUP BY status ORDER BY status
"""


@dataclass
class CpuSample:
    """Cumulative CPU seconds of the server, its PostgreSQL, this process; wall clock."""

    server: float
    postgres: dict[int, float]
    me: float
    wall: float


class Database:
    """A psycopg2 connection used between phases and around the window (never inside it)."""

    def __init__(self, url: str) -> None:
        self.connection = psycopg2.connect(libpq_dsn(url))
        self.connection.autocommit = True

    def one(self, sql: str, params: dict[str, object] | None = None) -> tuple:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()

    def all(self, sql: str, params: dict[str, object] | None = None) -> list[tuple]:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()


def cpu_sample(server: psutil.Process, pgdata: Path | None) -> CpuSample:
    return CpuSample(
        server=sum(server.cpu_times()[:2]),
        postgres=postgres_cpu(pgdata),
        me=own_cpu(),
        wall=time.perf_counter(),
    )


def print_cpu(before: CpuSample, after: CpuSample) -> None:
    wall = after.wall - before.wall
    postgres = postgres_cpu_between(before.postgres, after.postgres)
    print(
        f"CPU over the window, % of one core (2 cores = 200%): server "
        f"{100 * (after.server - before.server) / wall:.0f}%, PostgreSQL "
        f"{100 * postgres / wall:.0f}%, load generator {100 * (after.me - before.me) / wall:.0f}%"
    )


async def measure(
    base_url: str,
    database_url: str,
    server_pid: int,
    pgdata: Path | None,
    devices: int,
    duration: float,
) -> dict[str, float]:
    """One run against a started server; prints its figures and returns the headline ones."""
    database = Database(database_url)
    _, fleet = await asyncio.to_thread(
        create_fleet, database_url, devices, BENCH_SECRET, EVERY_SECOND
    )
    url = httpx.URL(base_url)
    streams = StreamClient([url.port or 80], url.host)
    began = time.perf_counter()
    await streams.open_all(fleet)
    print(
        f"streams: {streams.opened} open, {streams.failed} failed in "
        f"{time.perf_counter() - began:.1f} s"
    )
    (start,) = database.one(
        "UPDATE devices SET next_trigger_at = date_trunc('second', now()) + interval '2 seconds'"
        " RETURNING next_trigger_at"
    )
    await asyncio.sleep(2 + WARMUP_SECONDS)
    server = psutil.Process(server_pid)
    (t0, skipped0) = await asyncio.to_thread(
        database.one, "SELECT now(), sum(skipped_slots) FROM devices"
    )
    cpu0 = cpu_sample(server, pgdata)
    received0 = time.perf_counter()
    await asyncio.sleep(duration)
    (t1, skipped1) = await asyncio.to_thread(
        database.one, "SELECT now(), sum(skipped_slots) FROM devices"
    )
    cpu1 = cpu_sample(server, pgdata)
    received1 = time.perf_counter()
    window = (t1 - t0).total_seconds()
    read = sum(1 for at in list(streams.received.values()) if received0 <= at < received1)
    await asyncio.sleep(DRAIN_SECONDS)
    params = {"t0": t0, "t1": t1}
    created, sent, latency, lateness, unsent = database.one(_WINDOW_FIGURES, params)
    per_second = database.all(_PER_SECOND, params)
    statuses = dict(database.all(_STATUSES, params))
    window_ids = {
        trigger_id
        for (trigger_id,) in database.all(
            "SELECT trigger_id FROM scheduled_triggers WHERE trigger_type = 'scheduled'"
            " AND created_at >= %(t0)s AND created_at < %(t1)s",
            params,
        )
    }
    got = len(window_ids & streams.received.keys())
    await streams.close()
    database.connection.close()

    skipped = int(skipped1 - skipped0)
    print(f"schedules start {start:%H:%M:%S}; window {window:.1f} s after {WARMUP_SECONDS:.0f} s")
    print(f"  offered: {devices} devices x 1 slot/s = {devices:,}/s")
    print(f"  created: {created:,} = {created / window:,.0f}/s")
    print(f"  marked sent: {sent:,} = {sent / window:,.0f}/s")
    print(f"  events read by the clients: {read:,} = {read / window:,.0f}/s")
    print(f"  skipped slots: {skipped:,} = {skipped / window:,.0f}/s")
    if lateness:  # the scheduler's tick phase within the second, and how long a tick takes
        low, mid, high = (value.total_seconds() * 1000 for value in lateness)
        print(f"  slot -> trigger created (ms): min {low:.0f}  p50 {mid:.0f}  max {high:.0f}")
    if latency:
        p50, p99 = (value.total_seconds() * 1000 for value in latency)
        print(f"  slot -> sent mark (ms): p50 {p50:.0f}  p99 {p99:.0f}")
    print(
        f"  triggers created in the window, {DRAIN_SECONDS:.0f} s later: statuses {statuses}; "
        f"never marked sent: {unsent:,}; read by their device's client: {got:,} of "
        f"{len(window_ids):,}"
    )
    if per_second:
        print("  per second created/sent: " + " ".join(f"{c}/{s}" for _, c, s in per_second))
    print_cpu(cpu0, cpu1)
    return {
        "created": created / window,
        "sent": sent / window,
        "read": read / window,
        "skipped": skipped / window,
    }


def run(server_url: str, pgdata: Path | None, device_counts: list[int], duration: float) -> None:
    """For each count: a fresh database and server, then `measure`; a summary at the end."""
    print(f"file descriptor limit raised to {raise_fd_limit()}")
    try:  # the load generator shares the 2 cores: the same cheaper loop as bench_push
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    summary = []
    for count in device_counts:
        database_url = create_database(server_url, "visant_bench_sent")
        upgrade_to_head(database_url)
        workdir = Path(tempfile.mkdtemp(prefix="visant-bench-sent-"))
        port = 18000 + (os.getpid() + count) % 1000
        process = start_server(database_url, port, workdir / "server.log", SERVER_SETTINGS)
        print(f"\n{count} devices, 1 s interval: server pid {process.pid} on port {port}")
        try:
            figures = asyncio.run(
                measure(
                    f"http://127.0.0.1:{port}",
                    database_url,
                    process.pid,
                    pgdata,
                    count,
                    duration,
                )
            )
        finally:
            process.terminate()
            process.wait(timeout=30)
        summary.append((count, figures))
    print(f"\n{'devices':>8} {'created/s':>10} {'sent/s':>8} {'read/s':>8} {'skipped/s':>9}")
    for count, figures in summary:
        print(
            f"{count:>8} {figures['created']:>10,.0f} {figures['sent']:>8,.0f}"
            f" {figures['read']:>8,.0f} {figures['skipped']:>9,.0f}"
        )

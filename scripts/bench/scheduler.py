"""Benchmark the TriggerScheduler: tick time against due count and fleet size, and triggers/s.

    python -m scripts.bench.scheduler [--fleet 100000] [--batch 500] [--sustained-due 20000]
    python -m scripts.bench.scheduler --sent 2000 5000 [--duration 30]
    python -m scripts.bench.scheduler ... --json      # only the final JSON line

Uses `DATABASE_URL` (a fresh database is created on that server) or an embedded PostgreSQL in
a temporary directory. Devices are bulk-loaded with COPY; "connected" devices get presence rows
on a bench instance with a fresh heartbeat; "due" devices get a past `next_trigger_at`; every
other device has its next slot tomorrow (in the index, not due). Triggers/s counts triggers
stored and announced (NOTIFY committed, and received by a LISTEN connection of this script).
Its floor, in the same run against the same PostgreSQL, stores and announces the same number
of triggers in the same batches by psycopg2 `execute_values` (scripts/bench/scheduler_floor.py);
the final JSON line carries `triggers_per_s`, `floor_triggers_per_s` and `ratio`.

`--sent N ...` measures instead the whole path on a real `python -m cloud` with N open SSE
streams: scheduled triggers created and marked sent per second (see bench_scheduler_sent.py).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import select
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg2

from cloud.core.config import Settings
from cloud.core.database_url import (
    create_database,
    libpq_dsn,
    start_embedded_postgres,
    stop_embedded_postgres,
)
from cloud.core.db import create_engine_for, create_session_factory
from cloud.core.migrate import upgrade_to_head
from cloud.hub.envelopes import COMMANDS_CHANNEL
from cloud.scheduling.scheduler import TickResult, TriggerScheduler
from scripts.bench.scheduler_floor import floor_triggers_per_s
from scripts.bench.scheduler_sent import run as run_sent

DAILY = json.dumps({"trigger": {"enabled": True, "interval_seconds": 86400}})
INSTANCE_ID = "bench-instance"
REPEATS = 5  # tick measurements per scenario (median reported)


class Fleet:
    """Bulk set-up of devices, presence and due times over one psycopg2 connection."""

    def __init__(self, url: str) -> None:
        self.connection = psycopg2.connect(libpq_dsn(url))
        self.connection.autocommit = True
        self.size = 0
        with self.connection.cursor() as cursor:
            self.org_id = str(uuid.uuid4())
            cursor.execute(
                "INSERT INTO orgs (org_id, name) VALUES (%s, %s)", (self.org_id, "bench")
            )
            cursor.execute(
                "INSERT INTO server_instances (instance_id, hostname, pid) VALUES (%s, 'bench', 0)",
                (INSTANCE_ID,),
            )

    def grow_to(self, size: int) -> None:
        """COPY devices until the fleet has `size`; each has its next slot tomorrow."""
        rows = io.StringIO()
        config = DAILY.replace("\\", "\\\\")
        for index in range(self.size, size):
            rows.write(
                f"BENCH{index:07d}\t{self.org_id}\tactive\t{config}\t1\t{index:064x}\tvsk_bench\t"
                "\\N\n"
            )
        rows.seek(0)
        with self.connection.cursor() as cursor:
            cursor.copy_expert(
                "COPY devices (device_id, org_id, status, config, config_version, key_hash,"
                " key_prefix, next_trigger_at) FROM STDIN",
                rows,
            )
            cursor.execute(
                "UPDATE devices SET next_trigger_at = date_trunc('day', now()) + interval '1 day'"
                " WHERE next_trigger_at IS NULL"
            )
            cursor.execute("VACUUM ANALYZE devices")
        self.size = size

    def prepare(self, due: int, connected: int) -> None:
        """Make the first `due` devices due now, the first `connected` of them streaming."""
        with self.connection.cursor() as cursor:
            cursor.execute("TRUNCATE captures, scheduled_triggers, device_connections CASCADE")
            cursor.execute(
                "UPDATE server_instances SET heartbeat_at = now() WHERE instance_id = %s",
                (INSTANCE_ID,),
            )
            cursor.execute(
                "INSERT INTO device_connections (device_id, instance_id, stream_id)"
                " SELECT device_id, %s, 'bench' FROM devices ORDER BY device_id LIMIT %s",
                (INSTANCE_ID, connected),
            )
            cursor.execute(
                "UPDATE devices SET next_trigger_at = date_trunc('day', now())"
                " WHERE device_id IN (SELECT device_id FROM devices ORDER BY device_id LIMIT %s)",
                (due,),
            )

    def count_triggers(self) -> int:
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM scheduled_triggers")
            return int(cursor.fetchone()[0])


class NotifyCounter(threading.Thread):
    """LISTENs on the commands channel and counts what arrives (what the hub would receive)."""

    def __init__(self, url: str) -> None:
        super().__init__(name="bench-listener", daemon=True)
        self.connection = psycopg2.connect(libpq_dsn(url))
        self.connection.autocommit = True
        with self.connection.cursor() as cursor:
            cursor.execute(f"LISTEN {COMMANDS_CHANNEL}")
        self.received = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            if select.select([self.connection], [], [], 0.2)[0]:
                self.connection.poll()
                self.received += len(self.connection.notifies)
                self.connection.notifies.clear()

    def wait_for(self, count: int, timeout: float = 30.0) -> float:
        """Seconds until `count` notifications have arrived (or the timeout)."""
        began = time.perf_counter()
        while self.received < count and time.perf_counter() - began < timeout:
            time.sleep(0.005)
        return time.perf_counter() - began


async def _timed_tick(scheduler: TriggerScheduler) -> tuple[float, TickResult]:
    began = time.perf_counter()
    result = await scheduler.tick()
    return time.perf_counter() - began, result


async def bench(url: str, fleet_size: int, batch: int, sustained_due: int, quiet: bool) -> dict:
    settings = Settings(keepalive_seconds=3600.0, scheduler_batch_size=batch)
    engine = create_engine_for(url, settings)
    scheduler = TriggerScheduler.from_settings(create_session_factory(engine), settings)
    fleet = Fleet(url)
    listener = NotifyCounter(url)
    listener.start()
    say = (lambda *_: None) if quiet else print
    ticks: list[dict] = []

    say(f"batch size {batch}; each figure is the median of {REPEATS} ticks")
    say(f"{'fleet':>8} {'due':>7} {'connected':>9} {'tick ms':>9} {'triggers':>8} {'skipped':>7}")

    async def scenario(due: int, connected: int) -> float:
        timings = []
        for _ in range(REPEATS):
            fleet.prepare(due, connected)
            elapsed, result = await _timed_tick(scheduler)
            assert result.claimed == due, result
            timings.append(elapsed)
        median = statistics.median(timings)
        ticks.append({"fleet": fleet.size, "due": due, "connected": connected})
        ticks[-1] |= {"tick_ms": round(median * 1000, 1), "triggered": result.triggered}
        say(
            f"{fleet.size:>8} {due:>7} {connected:>9} {median * 1000:>9.1f}"
            f" {result.triggered:>8} {result.skipped:>7}"
        )
        return median

    small = min(1_000, fleet_size)
    fleet.grow_to(small)
    await scenario(0, 0)
    base = await scenario(100, 100)
    fleet.grow_to(fleet_size)
    await scenario(0, 0)
    large = await scenario(100, 100)
    await scenario(100, 0)
    for due in (1_000, 10_000):
        if due <= fleet_size:
            await scenario(due, due)
    say(f"100 due among {fleet_size} vs among {small}: {large / base:.2f}x the tick time")

    say(f"\nsustained: {sustained_due} due and connected among {fleet_size}, 3 rounds")
    rates = []
    for _ in range(3):
        fleet.prepare(sustained_due, sustained_due)
        before = listener.received
        elapsed, result = await _timed_tick(scheduler)
        waited = listener.wait_for(before + result.triggered)
        stored = fleet.count_triggers()
        rate = result.triggered / elapsed
        rates.append(rate)
        say(
            f"  {result.triggered} triggers stored ({stored} rows) in {elapsed:.2f} s"
            f" = {rate:,.0f}/s; {listener.received - before} NOTIFYs received"
            f" (last {waited * 1000:.0f} ms after the tick)"
        )
    ours = statistics.median(rates)
    say(f"sustained triggers/s (median of 3): {ours:,.0f}")
    fleet.prepare(0, 0)
    with fleet.connection.cursor() as cursor:
        query = "SELECT device_id FROM devices ORDER BY device_id LIMIT %s"
        cursor.execute(query, (sustained_due,))
        due_ids = [row[0] for row in cursor.fetchall()]
    floors = [floor_triggers_per_s(url, due_ids, batch) for _ in range(3)]
    floor = statistics.median(floors)
    say(
        f"floor (execute_values INSERT + pg_notify, batches of {batch}, median of 3):"
        f" {floor:,.0f}/s; ours/floor {ours / floor:.2f}"
    )
    listener.stopping.set()
    listener.join(2)
    await engine.dispose()
    return {
        "triggers_per_s": round(ours),
        "floor_triggers_per_s": round(floor),
        "ratio": round(ours / floor, 2),
        "sustained_due": sustained_due,
        "fleet": fleet_size,
        "batch": batch,
        "large_over_small_tick": round(large / base, 2),
        "ticks": ticks,
        "cpus": os.cpu_count(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fleet", type=int, default=100_000, help="devices registered")
    parser.add_argument("--batch", type=int, default=500, help="scheduler batch size")
    parser.add_argument("--sustained-due", type=int, default=20_000, help="due per round")
    parser.add_argument(
        "--sent",
        type=int,
        nargs="+",
        metavar="N",
        help="instead: a real server with N streams on 1 s schedules; created and sent per s",
    )
    parser.add_argument("--duration", type=float, default=30.0, help="with --sent: window, s")
    parser.add_argument("--json", action="store_true", help="print only the final JSON line")
    args = parser.parse_args()
    server_url = os.environ.get("DATABASE_URL")
    embedded = not server_url
    pgdata = None
    if embedded:
        pgdata = Path(tempfile.mkdtemp(prefix="visant-bench-")) / "pg"
        server_url = start_embedded_postgres(pgdata)
    try:
        if args.sent:
            run_sent(server_url, pgdata, args.sent, args.duration)
            return 0
        url = create_database(server_url, "visant_bench")
        upgrade_to_head(url)
        due = min(args.sustained_due, args.fleet)
        report = asyncio.run(bench(url, args.fleet, args.batch, due, args.json))
        print(json.dumps(report))
    finally:
        if embedded:
            stop_embedded_postgres()
    return 0


if __name__ == "__main__":
    sys.exit(main())

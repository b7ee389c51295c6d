"""Benchmark command push against its floor: N idle SSE streams, manual triggers at a rate.

    python -m scripts.bench.push [--devices 2000] [--rate 100] [--duration 20]
        [--instances 1 2 4] [--rate-per-instance] [--impl sse-starlette] [--no-storm] [--json]

One run measures, with the same client, streams and trigger rate: the floor (a minimal
in-memory SSE server, scripts/bench/push_floor.py: no database, no auth), then the cloud
(`python -m cloud` on a fresh embedded PostgreSQL, or DATABASE_URL's server) once per
`--instances` count with the fleet spread over the instances (with `--rate-per-instance`,
N instances are fired at N times the rate, so each carries the same load), then with
`--impl sse-starlette` the cloud serving streams through sse-starlette. Each prints p50/p99
from just before the trigger API call to the event's `id:` line at the device (also per
second of firing), server CPU per trigger (summed over instances) and PostgreSQL's and the
load generator's, each less its idle rate measured over one keepalive, RSS per idle stream
and a reconnect storm (servers restarted, every stream reconnecting at once, a backlog
trigger for one device in ten written while they were down: seconds from the restart until
all streams are back and every backlog event arrived). The last line is JSON (`--json`:
only that line).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from cloud.core.database_url import create_database, start_embedded_postgres, stop_embedded_postgres
from cloud.core.migrate import upgrade_to_head
from scripts.bench.machine_cpu import own_cpu, postgres_cpu, postgres_cpu_between
from scripts.bench.profiler import start_profiler
from scripts.bench.push_clients import StreamClient
from scripts.bench.push_fleet import (
    close_open_triggers,
    create_fleet,
    fire,
    per_second,
    percentile,
    raise_fd_limit,
    store_backlog,
)
from scripts.bench.server import BENCH_SECRET, PROJECT_ROOT, free_port, start_server
from scripts.bench.server_gc import gc_pauses, gc_pauses_between
from scripts.bench.wal import recycle_wal_segments, wal_position

SETTLE_SECONDS = 2.5  # after the opens, before the idle CPU is measured
# Idle CPU is measured over one keepalive of the servers (15 s by default): it then holds
# what an idle fleet costs (a keepalive per stream, the instance heartbeat's last_seen_at
# writes), which goes on while firing too and is not the triggers' cost.
IDLE_SECONDS = 15.0
DRAIN_SECONDS = 5.0  # wait for late events after the last trigger
STORM_TIMEOUT = 90.0  # seconds a reconnect storm may take before it is reported unfinished
STORM_PROFILE_SECONDS = 15  # py-spy's run over a reconnect storm (--py-spy-storm)
STORM_PROGRESS_EVERY = 1.0  # seconds between the storm's (elapsed, streams back) samples
BACKLOG_EVERY = 10  # one device in ten gets a trigger while its server is down
WAL_SEGMENTS_READY = 32  # 512 MB of recycled WAL: more than a 10,000-stream run writes


class Target:
    """The servers one measurement runs against: the floor, or N cloud instances."""

    def __init__(self, name: str, database_url: str | None, instances: int, impl: str) -> None:
        self.name, self.database_url, self.impl = name, database_url, impl
        self.ports = [free_port() for _ in range(instances)]
        self.processes: list[subprocess.Popen[bytes]] = []
        self.workdir = Path(tempfile.mkdtemp(prefix="visant-bench-push-"))

    def start(self) -> None:
        self.processes = [self._start_one(port) for port in self.ports]

    def _start_one(self, port: int) -> subprocess.Popen[bytes]:
        if self.database_url is None:
            process = subprocess.Popen(
                [sys.executable, "-m", "scripts.bench.push_floor", "--port", str(port)],
                cwd=PROJECT_ROOT,
            )
            for _ in range(100):
                with contextlib.suppress(OSError):
                    with socket.create_connection(("127.0.0.1", port), 0.2):
                        return process
                time.sleep(0.1)
            raise SystemExit("floor server did not start")
        settings = {
            "VISANT_STREAM_IMPL": self.impl,
            "VISANT_STREAM_OPENS_PER_DEVICE_PER_MINUTE": "100",
        }
        return start_server(self.database_url, port, self.workdir / f"{port}.log", settings)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=60)

    def cpu(self) -> float:
        return sum(sum(psutil.Process(p.pid).cpu_times()[:2]) for p in self.processes)

    def gc_pauses(self) -> dict[str, list[float]]:
        """The first instance's collections so far (none for the floor, which reports none)."""
        return gc_pauses(self.ports[0]) if self.database_url is not None else {}

    def rss(self) -> int:
        return sum(psutil.Process(p.pid).memory_info().rss for p in self.processes)


def rate_for(args: argparse.Namespace, target: Target) -> float:
    """The rate `target` is fired at: --rate, or with --rate-per-instance --rate per instance."""
    return args.rate * len(target.ports) if args.rate_per_instance else args.rate


async def measure(
    args: argparse.Namespace, target: Target, token: str, fleet: list[tuple[str, str]]
) -> dict[str, Any]:
    if target.database_url is not None:
        close_open_triggers(target.database_url)
    await asyncio.to_thread(target.start)
    await asyncio.sleep(1)
    rss_before = target.rss()
    streams = StreamClient(target.ports)
    began = time.perf_counter()
    await streams.open_all(fleet)
    open_s = time.perf_counter() - began
    # Idle CPU after a settling time: what the opens left running (tasks finishing) would
    # otherwise count as idle and be taken off the firing phase's CPU.
    await asyncio.sleep(SETTLE_SECONDS)
    cpu0, postgres0, client0 = target.cpu(), postgres_cpu(args.pgdata), own_cpu()
    await asyncio.sleep(IDLE_SECONDS)
    idle_cpu_rate = (target.cpu() - cpu0) / IDLE_SECONDS
    idle_postgres_rate = postgres_cpu_between(postgres0, postgres_cpu(args.pgdata)) / IDLE_SECONDS
    idle_client_rate = (own_cpu() - client0) / IDLE_SECONDS
    rss_after = target.rss()
    devices = [device_id for device_id, _ in fleet]
    profiler = None
    if args.py_spy and target.database_url is not None and not args.profiled:
        args.profiled = True  # the first cloud target only
        profiler = start_profiler(target.processes[0].pid, args.py_spy, args.duration)
    cpu0, wall0 = target.cpu(), time.perf_counter()
    postgres0, client0, gc0 = postgres_cpu(args.pgdata), own_cpu(), target.gc_pauses()
    wal0 = wal_position(target.database_url) if target.database_url is not None else None
    with collector_paused():
        started, statuses, answered = await fire(
            target.ports, token, devices, rate_for(args, target), args.duration
        )
        for _ in range(int(DRAIN_SECONDS / 0.1)):
            if started.keys() <= streams.received.keys():
                break
            await asyncio.sleep(0.1)
    if profiler is not None:
        await asyncio.to_thread(profiler.wait)
    fire_wall = time.perf_counter() - wall0
    cpu_fire = target.cpu() - cpu0 - idle_cpu_rate * fire_wall
    postgres_fire = (
        postgres_cpu_between(postgres0, postgres_cpu(args.pgdata)) - idle_postgres_rate * fire_wall
    )
    client_fire = own_cpu() - client0 - idle_client_rate * fire_wall
    gc_fire = gc_pauses_between(gc0, target.gc_pauses())
    wal_fire = wal_position(target.database_url) - wal0 if wal0 is not None else None
    latencies = [
        (streams.received[t] - t0) * 1000 for t, t0 in started.items() if t in streams.received
    ]
    result: dict[str, Any] = {
        "target": target.name,
        "instances": len(target.ports),
        "streams": streams.opened,
        "streams_failed": streams.failed,
        "open_s": round(open_s, 1),
        "triggers": len(started),
        "rate_per_s": rate_for(args, target),
        "api_statuses": statuses,
        "api_p99_ms": round(percentile(answered, 0.99), 1) if answered else None,
        "push_p50_ms": round(percentile(latencies, 0.5), 1) if latencies else None,
        "push_p99_ms": round(percentile(latencies, 0.99), 1) if latencies else None,
        "lost": len(started) - len(latencies),
        "server_cpu_ms_per_trigger": round(1000 * cpu_fire / max(len(started), 1), 2),
        "idle_cpu_pct": round(100 * idle_cpu_rate, 1),
        "idle_db_cpu_pct": round(100 * idle_postgres_rate, 1) if args.pgdata else None,
        # What shares the machine with the server while it fires (the floor has no database).
        "db_cpu_ms_per_trigger": round(1000 * postgres_fire / max(len(started), 1), 2)
        if target.database_url is not None and args.pgdata is not None
        else None,
        "client_cpu_ms_per_trigger": round(1000 * client_fire / max(len(started), 1), 2),
        "wal_kib_per_trigger": round(wal_fire / 1024 / max(len(started), 1), 2)
        if wal_fire is not None
        else None,
        "kib_per_idle_stream": round((rss_after - rss_before) / max(streams.opened, 1) / 1024, 1),
        "seconds": per_second(started, streams.received),
        "gc_pauses": gc_fire,  # while firing and draining; of the first instance
    }
    if args.storm:
        storm_profile = args.py_spy_storm if target.database_url is not None else None
        result.update(await storm(target, streams, devices, storm_profile))
    await streams.close()
    await asyncio.to_thread(target.stop)
    return result


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No garbage collection in the load generator while it fires: holding 10,000 streams, a
    full collection of this process took ~200 ms, and showed up as a burst in the tail of the
    floor and the cloud alike (triggers fired late, events read late)."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


async def storm(
    target: Target, streams: StreamClient, devices: list[str], profile: str | None = None
) -> dict[str, Any]:
    """Restart the servers under the open streams; time until all are back, backlog replayed."""
    streams.reconnect = True
    await asyncio.to_thread(target.stop)
    backlog: list[str] = []
    if target.database_url is not None:
        backlog = store_backlog(target.database_url, devices[::BACKLOG_EVERY])
    began = time.perf_counter()
    await asyncio.to_thread(target.start)
    healthy_s = time.perf_counter() - began
    profiler = None
    if profile:
        profiler = start_profiler(target.processes[0].pid, profile, STORM_PROFILE_SECONDS)
    deadline = began + STORM_TIMEOUT
    progress: list[tuple[float, int]] = []  # (seconds since the restart, streams back)
    while time.perf_counter() < deadline:
        if streams.reopened >= streams.opened and set(backlog) <= streams.received.keys():
            break
        elapsed = time.perf_counter() - began
        if not progress or elapsed - progress[-1][0] >= STORM_PROGRESS_EVERY:
            progress.append((round(elapsed, 1), streams.reopened))
        await asyncio.sleep(0.05)
    done = streams.reopened >= streams.opened and set(backlog) <= streams.received.keys()
    if profiler is not None:
        await asyncio.to_thread(profiler.wait)
    return {
        "reconnect_storm_s": round(time.perf_counter() - began, 1) if done else None,
        "storm_server_start_s": round(healthy_s, 1),
        "storm_reopened": streams.reopened,
        "storm_backlog": len(backlog),
        "storm_backlog_lost": len(set(backlog) - streams.received.keys()),
        "storm_progress": progress,
    }


def report(results: list[dict[str, Any]], quiet: bool, rate: float) -> dict[str, Any]:
    floor = results[0]
    for r in results[1:]:
        if r["push_p99_ms"] and floor["push_p99_ms"]:
            r["p99_ratio"] = round(r["push_p99_ms"] / floor["push_p99_ms"], 2)
        r["cpu_ratio"] = round(
            r["server_cpu_ms_per_trigger"] / max(floor["server_cpu_ms_per_trigger"], 0.01), 2
        )
        r["memory_ratio"] = round(
            r["kib_per_idle_stream"] / max(floor["kib_per_idle_stream"], 0.1), 2
        )
    if not quiet:
        columns = [
            "target",
            "instances",
            "rate_per_s",
            "streams",
            "open_s",
            "push_p50_ms",
            "push_p99_ms",
            "p99_ratio",
            "server_cpu_ms_per_trigger",
            "kib_per_idle_stream",
            "reconnect_storm_s",
            "lost",
        ]
        print(" | ".join(columns))
        for r in results:
            print(" | ".join(str(r.get(c, "")) for c in columns))
        for r in results:
            print(f"{r['target']}, per second of firing: second | triggers | p50 | p99 | max ms")
            for row in r["seconds"]:
                print("  " + " | ".join(str(value) for value in row))
    ours = results[1]
    return {
        "bench": "push",
        "machine": {
            "nproc": os.cpu_count(),
            "cpu": cpu_model(),
            "python": platform.python_version(),
        },
        **{k: ours.get(k) for k in ("push_p50_ms", "push_p99_ms")},
        "floor_p99_ms": floor["push_p99_ms"],
        **{
            k: ours.get(k)
            for k in (
                "p99_ratio",
                "server_cpu_ms_per_trigger",
                "kib_per_idle_stream",
                "reconnect_storm_s",
                "lost",
            )
        },
        "floor_server_cpu_ms_per_trigger": floor["server_cpu_ms_per_trigger"],
        "floor_kib_per_idle_stream": floor["kib_per_idle_stream"],
        "floor_reconnect_storm_s": floor.get("reconnect_storm_s"),
        "devices": ours["streams"],
        "rate_per_s": rate,
        "triggers": ours["triggers"],
        "runs": results,
    }


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


async def bench(args: argparse.Namespace, database_url: str) -> dict[str, Any]:
    token, fleet = create_fleet(database_url, args.devices, BENCH_SECRET)
    if args.pgdata is not None:  # our server: as one that has run a while (scripts/bench/wal.py)
        recycle_wal_segments(database_url, WAL_SEGMENTS_READY)
    targets = [Target("floor", None, 1, "floor")]
    targets += [Target(f"visant x{n}", database_url, n, "visant") for n in args.instances]
    if args.impl == "sse-starlette":
        targets.append(Target("sse-starlette", database_url, 1, "sse-starlette"))
    results = []
    for target in targets:
        result = await measure(args, target, token, fleet)
        if not args.json:
            print(json.dumps(result), flush=True)
        results.append(result)
    return report(results, args.json, args.rate)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=2000, help="idle streams to open")
    parser.add_argument("--rate", type=float, default=100.0, help="manual triggers per second")
    parser.add_argument(
        "--rate-per-instance",
        action="store_true",
        help="N instances fire N x --rate (the same load on each instance, so each command's "
        "cost shows apart from how well each instance batches)",
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of firing")
    parser.add_argument("--instances", type=int, nargs="+", default=[1], help="cloud instances")
    parser.add_argument(
        "--impl",
        choices=["visant", "sse-starlette"],
        default="visant",
        help="sse-starlette: also measure the cloud streaming through it",
    )
    parser.add_argument("--no-storm", dest="storm", action="store_false", help="skip the storm")
    parser.add_argument("--json", action="store_true", help="print only the final JSON line")
    parser.add_argument("--py-spy", metavar="FILE", help="profile the cloud while firing (raw)")
    parser.add_argument(
        "--py-spy-storm", metavar="FILE", help="profile the cloud in the reconnect storm (raw)"
    )
    args = parser.parse_args()
    args.profiled = False
    raise_fd_limit()
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    server_url = os.environ.get("DATABASE_URL")
    embedded = not server_url
    workdir = Path(tempfile.mkdtemp(prefix="visant-bench-push-"))
    args.pgdata = workdir / "pg" if embedded else None  # its CPU is measured when it is ours
    if embedded:
        server_url = start_embedded_postgres(args.pgdata)
    try:
        database_url = create_database(server_url, "visant_bench")
        upgrade_to_head(database_url)
        final = asyncio.run(bench(args, database_url))
    finally:
        if embedded:
            stop_embedded_postgres()
    print(json.dumps(final))
    return 0


if __name__ == "__main__":
    sys.exit(main())

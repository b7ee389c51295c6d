"""Benchmark notifications: alert-to-receiver latency, notifications/s, slow-receiver isolation.

    python -m scripts.bench.alerts [--count 2000] [--paced 200] [--json]

Starts `python -m cloud` on a private embedded PostgreSQL (deleted afterwards) and a loopback
webhook receiver in this process (a minimal asyncio HTTP/1.1 server, so the receiver costs
little). Phases:
1. paced: one test notification every 20 ms through `POST /v1/channels/{id}/test`; latency is
   the receiver's arrival time minus the notification's own timestamp (same clock).
2. burst: `--count` outbox rows written in one transaction (as alerts write them); the rate
   is rows / time until the receiver has them all.
3. floor: the same receiver hit directly by a bare httpx loop with the worker's concurrency,
   same body size: the most this machine does without the database or the worker.
4. slow: a second channel whose receiver takes 2 s per request gets a burst at the same time
   as the fast channel; the fast channel's p99 must stay far below 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa

from cloud.core.database_url import start_embedded_postgres, stop_embedded_postgres
from cloud.core.db import create_sync_session_factory
from cloud.core.ids import new_notification_id
from cloud.core.migrate import upgrade_to_head
from cloud.core.security import USER_TOKEN_PREFIX, hash_password, hash_secret, new_secret
from cloud.models import Notification, Org, User, UserToken
from scripts.bench.server import BENCH_SECRET, free_port, start_server

CONCURRENCY = 32  # the worker's default VISANT_ALERTS_MAX_IN_FLIGHT
SLOW_SECONDS = 2.0  # seconds the slow receiver takes per request
PACE = 0.02  # seconds between paced notifications
WAIT = 120.0  # seconds at most for a phase to arrive


class Receiver:
    """Loopback HTTP server: records arrival time and the body's timestamp per webhook id."""

    def __init__(self) -> None:
        self.port = free_port()
        self.arrivals: dict[str, tuple[float, float]] = {}  # id -> (arrival, sent timestamp)
        self.changed = asyncio.Event()

    async def start(self) -> None:
        self._writers: set[asyncio.StreamWriter] = set()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {
                    k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if lines[0].split()[1].startswith("/slow"):
                    await asyncio.sleep(SLOW_SECONDS)
                arrival = time.time()
                event_id = headers.get("webhook-id") or uuid.uuid4().hex
                sent = datetime.fromisoformat(json.loads(body)["timestamp"]).timestamp()
                self.arrivals.setdefault(event_id, (arrival, sent))
                self.changed.set()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, IndexError):
            writer.close()
        finally:
            self._writers.discard(writer)

    async def wait_for(self, ids: set[str]) -> None:
        deadline = time.monotonic() + WAIT
        while not ids <= self.arrivals.keys():
            if time.monotonic() > deadline:
                raise SystemExit(f"only {len(ids & self.arrivals.keys())}/{len(ids)} arrived")
            self.changed.clear()
            await asyncio.wait([asyncio.ensure_future(self.changed.wait())], timeout=1)

    def latencies_ms(self, ids: set[str]) -> list[float]:
        return sorted((self.arrivals[i][0] - self.arrivals[i][1]) * 1000 for i in ids)


def _pct(values: list[float], q: float) -> float:
    return round(values[min(len(values) - 1, int(q * len(values)))], 1) if values else 0.0


def _admin_headers(database_url: str) -> dict[str, str]:
    """An org admin with a token, written directly; its Authorization header."""
    sessions = create_sync_session_factory(database_url)
    token = new_secret(USER_TOKEN_PREFIX)
    with sessions() as session:
        org = Org(name=f"bench-{uuid.uuid4().hex[:6]}")
        session.add(org)
        session.flush()
        user = User(org_id=org.org_id, email="bench@example.test", password_hash=hash_password("x"))
        session.add(user)
        session.flush()
        session.add(
            UserToken(
                user_id=user.user_id,
                token_hash=hash_secret(token, BENCH_SECRET),
                expires_at=datetime.now(UTC) + timedelta(days=1),
            )
        )
        session.commit()
    return {"Authorization": f"Bearer {token}"}


def _burst(database_url: str, channel_id: str, count: int) -> set[str]:
    """`count` outbox rows in one transaction, as raised alerts write them."""
    sessions = create_sync_session_factory(database_url)
    now = datetime.now(UTC).isoformat()
    rows = [
        {
            "notification_id": new_notification_id(),
            "channel_id": channel_id,
            "event_type": "test",
            "payload": {"title": "bench", "body": "bench", "timestamp": now, "data": {}},
        }
        for _ in range(count)
    ]
    with sessions() as session:
        session.execute(sa.insert(Notification), rows)
        session.execute(sa.select(sa.func.pg_notify("visant_alerts", "")))
        session.commit()
    return {row["notification_id"] for row in rows}


async def _floor(receiver: Receiver, count: int) -> float:
    """Requests/s of a bare httpx loop against the receiver, same concurrency and body."""
    body = json.dumps({"type": "test", "timestamp": datetime.now(UTC).isoformat(), "data": {}})
    ids = [f"floor_{i}" for i in range(count)]
    queue: asyncio.Queue[str] = asyncio.Queue()
    for item in ids:
        queue.put_nowait(item)
    async with httpx.AsyncClient(
        timeout=10, limits=httpx.Limits(max_connections=CONCURRENCY)
    ) as client:

        async def loop() -> None:
            while not queue.empty():
                item = queue.get_nowait()
                await client.post(
                    f"http://127.0.0.1:{receiver.port}/fast",
                    content=body,
                    headers={"webhook-id": item},
                )

        began = time.monotonic()
        await asyncio.gather(*(loop() for _ in range(CONCURRENCY)))
        return count / (time.monotonic() - began)


async def bench(args: argparse.Namespace) -> dict[str, object]:
    receiver = Receiver()
    await receiver.start()
    root = Path(tempfile.mkdtemp(prefix="visant-bench-alerts-"))
    database_url = start_embedded_postgres(root / "pgdata")
    process = None
    try:
        upgrade_to_head(database_url)
        headers = _admin_headers(database_url)
        port = free_port()
        process = start_server(
            database_url,
            port,
            sys.stderr,
            {"VISANT_ALLOW_PRIVATE_WEBHOOKS": "true", "VISANT_DATA_DIR": str(root)},
        )
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as api:
            channels = []
            for path in ("fast", "slow"):
                response = await api.post(
                    "/v1/channels",
                    json={
                        "name": path,
                        "kind": "webhook",
                        "url": f"http://127.0.0.1:{receiver.port}/{path}",
                    },
                )
                response.raise_for_status()
                channels.append(response.json()["channel_id"])
            fast, slow = channels
            paced = set()
            for _ in range(args.paced):
                paced.add((await api.post(f"/v1/channels/{fast}/test")).json()["notification_id"])
                await asyncio.sleep(PACE)
            await receiver.wait_for(paced)
        began = time.monotonic()
        burst = await asyncio.to_thread(_burst, database_url, fast, args.count)
        await receiver.wait_for(burst)
        ours = args.count / (time.monotonic() - began)
        floor = await _floor(receiver, args.count)
        slow_ids = await asyncio.to_thread(_burst, database_url, slow, CONCURRENCY // 2)
        fast_ids = await asyncio.to_thread(_burst, database_url, fast, 200)
        await receiver.wait_for(fast_ids)
        await receiver.wait_for(slow_ids)
    finally:
        if process is not None:
            process.terminate()
            process.wait(30)
        stop_embedded_postgres()
        await receiver.stop()
        shutil.rmtree(root, ignore_errors=True)
    latency = receiver.latencies_ms(paced)
    beside_slow = receiver.latencies_ms(fast_ids)
    return {
        "paced_latency_p50_ms": _pct(latency, 0.5),
        "paced_latency_p99_ms": _pct(latency, 0.99),
        "notifications_per_s": round(ours, 1),
        "floor_requests_per_s": round(floor, 1),
        "ratio": round(ours / floor, 3),
        "fast_beside_slow_p50_ms": _pct(beside_slow, 0.5),
        "fast_beside_slow_p99_ms": _pct(beside_slow, 0.99),
        "slow_receiver_seconds": SLOW_SECONDS,
        "slow_channel_isolated": _pct(beside_slow, 0.99) < SLOW_SECONDS * 1000,
        "paced": args.paced,
        "burst": args.count,
        "median_paced_ms": round(statistics.median(latency), 1) if latency else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench.alerts", description=__doc__)
    parser.add_argument("--count", type=int, default=2000, help="burst size (notifications)")
    parser.add_argument("--paced", type=int, default=200, help="paced notifications")
    parser.add_argument("--json", action="store_true", help="print only the final JSON line")
    args = parser.parse_args(argv)
    report = asyncio.run(bench(args))
    if not args.json:
        print(
            f"alert-to-receiver latency (paced): p50 {report['paced_latency_p50_ms']} ms, "
            f"p99 {report['paced_latency_p99_ms']} ms"
        )
        print(
            f"notifications/s: ours {report['notifications_per_s']}, "
            f"floor (bare httpx) {report['floor_requests_per_s']}, ratio {report['ratio']}"
        )
        print(
            f"fast channel beside a {SLOW_SECONDS:g} s receiver: p50 "
            f"{report['fast_beside_slow_p50_ms']} ms, p99 {report['fast_beside_slow_p99_ms']} ms"
        )
    print(json.dumps(report))
    return 0 if report["slow_channel_isolated"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""Helpers of the push benchmarks: the fleet in the database, triggers fired at a steady rate."""

from __future__ import annotations

import asyncio
import json
import resource
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg2
import psycopg2.extras

from cloud.core.database_url import libpq_dsn
from cloud.core.security import DEVICE_KEY_PREFIX, USER_TOKEN_PREFIX, hash_secret, new_secret
from scripts.bench.push_clients import RawHttpPool

API_CONNECTIONS = 64  # keep-alive connections (per instance) used to fire triggers


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
    ports: list[int], token: str, devices: list[str], rate: float, duration: float
) -> tuple[dict[str, float], dict[str, int], list[float]]:
    """Fire manual triggers at `rate`/s for `duration` s, device i's through the instance after
    the one holding its stream (so with several instances every command crosses instances).

    Returns each trigger's start time, the API statuses and the API response times (ms).
    """
    started: dict[str, float] = {}
    statuses: dict[str, int] = {}
    answered: list[float] = []
    pools = [RawHttpPool("127.0.0.1", port, API_CONNECTIONS) for port in ports]
    authorization = f"Bearer {token}"

    async def one(index: int) -> None:
        device_index = index % len(devices)
        pool = pools[(device_index + 1) % len(pools)]
        began = time.perf_counter()
        try:
            status, payload = await pool.post_json(
                f"/v1/devices/{devices[device_index]}/trigger", authorization, b"{}"
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
    for pool in pools:
        pool.close()
    return started, statuses, answered


def close_open_triggers(url: str) -> None:
    """Expire what earlier runs left open, so a stream's backlog holds only this run's."""
    connection = psycopg2.connect(libpq_dsn(url))
    with connection, connection.cursor() as cursor:
        cursor.execute(
            "UPDATE scheduled_triggers SET status = 'expired', finished_at = now() "
            "WHERE status IN ('pending', 'sent')"
        )
    connection.close()


def store_backlog(url: str, devices: list[str]) -> list[str]:
    """A pending manual trigger for each device, written while its server is down."""
    connection = psycopg2.connect(libpq_dsn(url))
    ids = [f"trg_{uuid.uuid4().hex}" for _ in devices]
    with connection, connection.cursor() as cursor:
        psycopg2.extras.execute_values(
            cursor,
            "INSERT INTO scheduled_triggers (trigger_id, device_id, trigger_type, status, "
            "scheduled_at, created_at, expires_at) VALUES %s",
            [(tid, d, "manual", "pending") for tid, d in zip(ids, devices, strict=True)],
            template="(%s, %s, %s, %s, now(), now(), now() + interval '10 minutes')",
            page_size=1000,
        )
    connection.close()
    return ids


def per_second(
    started: dict[str, float], received: dict[str, float]
) -> list[tuple[int, int, float, float, float]]:
    """(second of firing, triggers fired in it, p50, p99, max push latency in ms) per second:
    whether a tail is spread or one burst."""
    if not started:
        return []
    origin = min(started.values())
    by_second: dict[int, list[float]] = {}
    for trigger_id, began in started.items():
        if trigger_id in received:
            latency = (received[trigger_id] - began) * 1000
            by_second.setdefault(int(began - origin), []).append(latency)
    return [
        (second, len(values), *(round(percentile(values, f), 1) for f in (0.5, 0.99, 1.0)))
        for second, values in sorted(by_second.items())
    ]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

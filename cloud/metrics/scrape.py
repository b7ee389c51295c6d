"""The scrape: the process's counters plus values read now from the app and PostgreSQL.

Triggers by state and the scheduler lag come from SQL bounded by a statement timeout (a slow
database must not hang the scrape; the families are then just absent, and
`visant_scrape_sql_ok` says 0). Streams open and the pool in use are read from this app.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cloud.metrics import gc_pauses
from cloud.metrics.registry import REGISTRY
from cloud.models import TriggerStatus

logger = logging.getLogger(__name__)

SCRAPE_SQL_TIMEOUT_MS = 2000

_TRIGGERS_BY_STATE = sa.text(
    "SELECT status, trigger_type, count(*) FROM scheduled_triggers GROUP BY status, trigger_type"
)
# The oldest slot still owed: the scheduler's lag (0 when nothing is overdue). Served by the
# partial index on devices.next_trigger_at.
_SCHEDULER_LAG = sa.text(
    "SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(next_trigger_at)), 0) FROM devices "
    "WHERE next_trigger_at IS NOT NULL AND next_trigger_at <= now() AND deleted_at IS NULL"
)


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


async def _sql_families(
    sessions: async_sessionmaker[AsyncSession],
) -> list[GaugeMetricFamily]:
    triggers = GaugeMetricFamily(
        "visant_triggers", "Triggers in PostgreSQL by state and type.", labels=["state", "type"]
    )
    lag = GaugeMetricFamily(
        "visant_scheduler_lag_seconds", "Now minus the oldest due schedule slot (0: none due)."
    )
    async with sessions() as session, session.begin():
        await session.execute(sa.text(f"SET LOCAL statement_timeout = {SCRAPE_SQL_TIMEOUT_MS}"))
        counted = {
            (status, kind): count
            for status, kind, count in await session.execute(_TRIGGERS_BY_STATE)
        }
        lag.add_metric([], float(await session.scalar(_SCHEDULER_LAG) or 0.0))
    kinds = sorted({kind for _, kind in counted}) or ["manual", "scheduled"]
    for state in TriggerStatus:
        for kind in kinds:
            triggers.add_metric([state.value, kind], counted.get((state.value, kind), 0))
    return [triggers, lag]


async def render(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    streams_open: Callable[[], int],
) -> bytes:
    """The Prometheus text of one scrape."""
    families: list[Metric] = [gc_pauses.family()]
    streams = GaugeMetricFamily("visant_streams_open", "Device streams open on this instance.")
    streams.add_metric([], streams_open())
    pool = GaugeMetricFamily(
        "visant_db_pool_in_use", "Database connections checked out of this instance's pool."
    )
    pool.add_metric([], float(engine.pool.checkedout()))  # type: ignore[attr-defined]
    families += [streams, pool]
    sql_ok = GaugeMetricFamily("visant_scrape_sql_ok", "1 when the scrape's SQL answered.")
    try:
        families += await _sql_families(sessions)
        sql_ok.add_metric([], 1)
    except Exception as exc:  # noqa: BLE001 - a scrape must answer even with the database down
        logger.warning("metrics scrape: database values unavailable (%s)", exc)
        sql_ok.add_metric([], 0)
    families.append(sql_ok)
    instance = CollectorRegistry(auto_describe=False)
    instance.register(_Families(families))
    return generate_latest(REGISTRY) + generate_latest(instance)

"""An instance's batchers of an upload's two statements: its admission and its row.

Concurrent uploads share each statement (cloud/core/batching.py): at 32 uploads in flight a
statement serves several, so the round trips, commits and pool checkouts per upload fall with
the load. A lone upload finds a lane idle and goes at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from cloud.auth.device_admission import Admission, authenticate_and_count_many
from cloud.captures.quiet_insert import CaptureRows
from cloud.captures.upload_checks import UPLOAD_LOOKUPS
from cloud.core.batching import StatementBatcher
from cloud.core.config import Settings
from cloud.limits.counters import Limit
from cloud.metrics.registry import UPLOAD_BATCH

REFUSAL = "too many uploads from this device"


def upload_limit(settings: Settings) -> Limit:
    return Limit("uploads", settings.uploads_per_device_per_minute, 60)


@dataclass(frozen=True)
class UploadAsk:
    """What an upload's admission checks: the key presented for the device, and the ids it
    looks up (an earlier try of the same capture id, the trigger it names)."""

    device_id: str
    key_hash: str
    capture_id: str | None
    trigger_id: str | None


class UploadAdmissions(StatementBatcher[UploadAsk, Admission]):
    """Authenticates and counts uploads with their lookups, those that wait together."""

    name = "upload admissions"
    # Its only write is the upload count: one lost in a PostgreSQL crash lets a device upload
    # a little more in that minute, so no upload waits for the count's WAL flush.
    durable = False

    def __init__(self, engine: AsyncEngine, limit: Limit, connections: int, max_batch: int):
        super().__init__(engine, connections, max_batch, UPLOAD_BATCH.labels("admission").observe)
        self._limit = limit

    async def _run(self, asks: list[UploadAsk], driver: Any) -> list[Admission]:
        return await authenticate_and_count_many(
            driver,
            [(ask.device_id, ask.key_hash) for ask in asks],
            self._limit,
            REFUSAL,
            UPLOAD_LOOKUPS,
            ([ask.capture_id for ask in asks], [ask.trigger_id for ask in asks]),
        )


@dataclass(frozen=True)
class UploadBatchers:
    admissions: UploadAdmissions
    rows: CaptureRows

    async def stop(self) -> None:
        """Let the statements under way and the uploads waiting for them finish."""
        await self.admissions.stop()
        await self.rows.stop()


def upload_batchers(engine: AsyncEngine, settings: Settings) -> UploadBatchers:
    connections, max_batch = settings.upload_batch_connections, settings.upload_batch_max
    return UploadBatchers(
        UploadAdmissions(engine, upload_limit(settings), connections, max_batch),
        CaptureRows(engine, connections, max_batch),
    )

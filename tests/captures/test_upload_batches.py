"""An upload's two statements shared by the uploads in flight, on a real PostgreSQL: each upload
of a batch gets the answer it would get alone (its count, its key's verdict, its row), a row
refused inside a batch reaches only its own upload, and the admission lanes' commits skip the
WAL wait without leaving that setting on pooled connections."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cloud.auth.device_admission import Admission
from cloud.captures.quiet_insert import CaptureRow
from cloud.captures.upload_batches import (
    UploadAdmissions,
    UploadAsk,
    UploadBatchers,
    upload_batchers,
)
from cloud.core.config import Settings
from cloud.core.db import DatabaseUnavailable, create_engine_for
from cloud.core.errors import ApiError
from cloud.core.ids import new_record_id
from cloud.core.security import hash_secret
from cloud.models import Capture, Device, Trigger, TriggerStatus
from tests.support.captures import make_trigger
from tests.support.factories import TEST_SECRET_KEY, DeviceWithKey, Factory


def _with_batchers(
    database_url: str, settings: Settings, work: Callable[[UploadBatchers], Coroutine]
) -> Any:
    async def run() -> Any:
        engine = create_engine_for(database_url, settings)
        try:
            batchers = upload_batchers(engine, settings)
            result = await work(batchers)
            await batchers.stop()
            return result
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _ask(device: DeviceWithKey, key: str | None = None, **ids: str | None) -> UploadAsk:
    return UploadAsk(
        device.device_id,
        hash_secret(key or device.key, TEST_SECRET_KEY),
        ids.get("capture_id"),
        ids.get("trigger_id"),
    )


async def _together(batchers: UploadBatchers, asks: list[UploadAsk]) -> list[Admission]:
    """`asks` in one statement: each is queued before the lane, whose connection the first
    one's submit opens, takes its batch."""
    return await asyncio.gather(*(batchers.admissions.submit(ask) for ask in asks))


def test_uploads_of_one_device_in_one_batch_are_counted_one_by_one(
    database_url: str, settings: Settings, factory: Factory
) -> None:
    settings = settings.model_copy(
        update={"upload_batch_connections": 1, "uploads_per_device_per_minute": 3}
    )
    device, other = factory.device(), factory.device()
    asks = [_ask(device) for _ in range(5)] + [_ask(other), _ask(device, key=other.key)]

    async def work(batchers: UploadBatchers) -> tuple[list[Admission], int]:
        answers = await _together(batchers, asks)
        return answers, batchers.admissions.statements_sent

    answers, statements = _with_batchers(database_url, settings, work)
    assert statements == 1
    verdicts = [a.answer if isinstance(a.answer, ApiError) else "ok" for a in answers]
    # The first three of the device pass, the fourth and fifth are over the minute's limit;
    # the other device counts apart; the other device's key for this device is 401.
    assert verdicts[:3] == ["ok"] * 3
    assert [(v.status_code, v.detail) for v in verdicts[3:5]] == [  # type: ignore[union-attr]
        (429, "too many uploads from this device")
    ] * 2
    assert verdicts[5] == "ok"
    assert verdicts[6].status_code == 401  # type: ignore[union-attr]
    assert [a.row["count"] for a in answers[:6]] == [1, 2, 3, 4, 5, 1]


def test_admission_lookups_answer_each_upload_of_a_batch(
    database_url: str,
    settings: Settings,
    factory: Factory,
    db: sessionmaker[Session],
) -> None:
    settings = settings.model_copy(update={"upload_batch_connections": 1})
    device = factory.device()
    trigger_id = make_trigger(db, device.device_id, TriggerStatus.SENT)
    asks = [
        _ask(device, capture_id="first"),
        _ask(device, capture_id="second", trigger_id=trigger_id),
        _ask(device, trigger_id="trg_" + "0" * 32),
    ]

    async def work(batchers: UploadBatchers) -> list[Admission]:
        return await _together(batchers, asks)

    answers = _with_batchers(database_url, settings, work)
    assert all(isinstance(a.answer, Device) for a in answers)
    rows = [a.row for a in answers]
    assert [r["previous_id"] for r in rows] == [None, None, None]
    assert rows[1]["trigger_device_id"] == device.device_id
    assert rows[1]["trigger_status"] == "sent"
    assert rows[2]["trigger_device_id"] is None  # no such trigger: the upload's 404


def _read_before_each_statement(admissions: UploadAdmissions, query: str, into: list) -> None:
    """Each admission statement's lane first reads `query` on its connection into `into`."""
    original = admissions._run

    async def read_then_run(asks: list[UploadAsk], driver: Any) -> list[Admission]:
        into.append(await driver.fetchval(query))
        return await original(asks, driver)

    admissions._run = read_then_run  # type: ignore[method-assign]


def _row(device_id: str, **fields: Any) -> CaptureRow:
    now = datetime.now(UTC)
    record_id = new_record_id()
    values: dict[str, Any] = {
        "record_id": record_id,
        "device_id": device_id,
        "captured_at": now,
        "received_at": now,
        "trigger_id": None,
        "trigger_type": "event",
        "trigger_label": None,
        "evaluation_status": "completed",
        "evaluation_result": json.dumps({"alert": False}),
        "metadata": "{}",
        "detections": "[]",
        "snapshot_key": f"{device_id}/2026/12/07/{record_id}.jpg",
        "content_type": "image/jpeg",
        "size_bytes": 3,
        "width": 1,
        "height": 1,
        "sha256": "0" * 64,
        "client_capture_id": None,
        "matched_rules": "[]",
        "cooldown_since": now,
        "event": "{}",
    }
    return CaptureRow(**{**values, **fields})


def test_a_refused_row_reaches_only_its_own_upload(
    database_url: str, settings: Settings, factory: Factory, db: sessionmaker[Session]
) -> None:
    """Two tries of one capture id in one batch refuse the statement whole; run one by one,
    the first is stored, the second refused, and the batch's other rows are stored."""
    settings = settings.model_copy(update={"upload_batch_connections": 1})
    device = factory.device()
    trigger_id = make_trigger(db, device.device_id, TriggerStatus.SENT)
    rows = [
        _row(device.device_id),
        _row(device.device_id, client_capture_id="same"),
        _row(device.device_id, client_capture_id="same"),
        _row(device.device_id, trigger_id=trigger_id, trigger_label=""),
    ]

    async def work(batchers: UploadBatchers) -> tuple[list[Any], int]:
        submits = [batchers.rows.submit(row) for row in rows]
        answers = await asyncio.gather(*submits, return_exceptions=True)
        return answers, batchers.rows.statements_sent

    answers, statements = _with_batchers(database_url, settings, work)
    assert statements == 1 + len(rows)  # the batch refused whole, then each row alone
    assert answers[0] is True and answers[3] is True
    tries = answers[1:3]
    assert sum(answer is True for answer in tries) == 1
    assert sum(isinstance(answer, asyncpg.UniqueViolationError) for answer in tries) == 1
    with db() as session:
        stored = session.scalars(sa.select(Capture.record_id)).all()
        trigger = session.get(Trigger, trigger_id)
    assert len(stored) == 3
    assert trigger is not None and trigger.status is TriggerStatus.EXECUTED
    assert trigger.capture_id == rows[3].record_id


def test_two_rows_for_one_trigger_in_a_batch_store_one(
    database_url: str, settings: Settings, factory: Factory, db: sessionmaker[Session]
) -> None:
    """The trigger closes once; the other row is not stored (its upload's transaction then
    answers with the winner's record)."""
    settings = settings.model_copy(update={"upload_batch_connections": 1})
    device = factory.device()
    trigger_id = make_trigger(db, device.device_id, TriggerStatus.SENT)
    rows = [_row(device.device_id)] + [
        _row(device.device_id, trigger_id=trigger_id, client_capture_id=f"try-{n}")
        for n in range(2)
    ]

    async def work(batchers: UploadBatchers) -> tuple[list[bool], int]:
        answers = await asyncio.gather(*(batchers.rows.submit(row) for row in rows))
        return answers, batchers.rows.statements_sent

    answers, statements = _with_batchers(database_url, settings, work)
    assert statements == 1
    assert answers[0] is True and sorted(answers[1:]) == [False, True]
    winner = rows[1] if answers[1] else rows[2]
    with db() as session:
        trigger = session.get(Trigger, trigger_id)
        assert trigger is not None and trigger.capture_id == winner.record_id
        assert session.scalar(sa.select(sa.func.count()).select_from(Capture)) == 2


def test_admission_lanes_skip_the_wal_wait_and_give_their_connection_back_as_taken(
    database_url: str, settings: Settings, factory: Factory
) -> None:
    settings = settings.model_copy(update={"upload_batch_connections": 1, "db_pool_size": 1})
    device = factory.device()
    seen: list[str] = []

    async def work(batchers: UploadBatchers) -> str:
        admissions = batchers.admissions
        _read_before_each_statement(admissions, "SHOW synchronous_commit", seen)
        await admissions.submit(_ask(device))
        await admissions.stop()  # the lane gives its connection back
        engine = admissions._engine
        async with engine.connect() as connection:  # the pool's only connection
            return (await connection.exec_driver_sql("SHOW synchronous_commit")).scalar_one()

    after = _with_batchers(database_url, settings, work)
    assert seen == ["off"]
    assert after == "on"


def test_an_upload_that_left_before_its_batch_ran_is_not_counted(
    database_url: str, settings: Settings, factory: Factory
) -> None:
    settings = settings.model_copy(update={"upload_batch_connections": 1})
    device = factory.device()

    async def work(batchers: UploadBatchers) -> list[int]:
        tasks = [asyncio.ensure_future(batchers.admissions.submit(_ask(device))) for _ in range(3)]
        await asyncio.sleep(0)  # each is queued; the lane is still opening its connection
        tasks[1].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return [task.result().row["count"] for task in (tasks[0], tasks[2])]

    assert _with_batchers(database_url, settings, work) == [1, 2]


def test_a_lane_whose_connection_was_cut_answers_503_and_the_next_upload_gets_a_fresh_one(
    database_url: str, settings: Settings, factory: Factory
) -> None:
    """A backend ended under a lane: its upload is a 503 (DatabaseUnavailable) or, had the
    lane seen the socket closed first, served on a fresh connection; never a 500. The cut
    connection is not pooled again."""
    settings = settings.model_copy(update={"upload_batch_connections": 1})
    device = factory.device()

    async def work(batchers: UploadBatchers) -> tuple[list[str], bool]:
        admissions = batchers.admissions
        backends: list[int] = []
        _read_before_each_statement(admissions, "SELECT pg_backend_pid()", backends)
        await admissions.submit(_ask(device))
        async with admissions._engine.connect() as other:
            await other.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": backends[0]})
        outcomes = []
        for _ in range(2):
            try:
                await admissions.submit(_ask(device))
                outcomes.append("served")
            except DatabaseUnavailable:
                outcomes.append("503")
        return outcomes, backends[0] in backends[1:]

    outcomes, cut_reused = _with_batchers(database_url, settings, work)
    assert outcomes in (["503", "served"], ["served", "served"])
    assert not cut_reused

"""Fixtures for the operator scripts: their environment and rows built straight from the models."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from cloud.core.ids import new_record_id, new_trigger_id
from cloud.models import Capture, EvaluationStatus, Trigger, TriggerStatus, TriggerType
from tests.support.factories import TEST_SECRET_KEY

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def script_env(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db: sessionmaker[Session]
) -> dict[str, str]:
    """What a script sees: the emptied test database, the test secret, a private data dir."""
    env = {
        "DATABASE_URL": database_url,
        "VISANT_SECRET_KEY": TEST_SECRET_KEY,
        "VISANT_DATA_DIR": str(tmp_path / "data"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("VISANT_TEST_PASSWORD", raising=False)
    return env


def run_script(
    args: list[str], env: dict[str, str], stdin: str = ""
) -> subprocess.CompletedProcess:
    """Run a script as a real process from the project root (args after `python`)."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


class Rows:
    """Inserts triggers and captures directly: any state, broken ones included."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def trigger(
        self,
        device_id: str,
        status: TriggerStatus = TriggerStatus.PENDING,
        trigger_type: TriggerType = TriggerType.MANUAL,
        expires_in: timedelta = timedelta(minutes=5),
        created_at: datetime | None = None,
        **columns: Any,
    ) -> str:
        now = datetime.now(UTC)
        created = created_at or now
        trigger = Trigger(
            trigger_id=new_trigger_id(),
            device_id=device_id,
            trigger_type=trigger_type,
            status=status,
            scheduled_at=created,
            created_at=created,
            expires_at=now + expires_in,
            **columns,
        )
        with self.sessions() as session:
            session.add(trigger)
            session.commit()
        return trigger.trigger_id

    def capture(
        self,
        device_id: str,
        trigger_id: str | None = None,
        *,
        link: bool = True,
        snapshot_key: str | None = None,
        evaluation_status: EvaluationStatus = EvaluationStatus.COMPLETED,
        received_at: datetime | None = None,
    ) -> str:
        """A capture; with `link`, its trigger becomes executed and points back at it."""
        record_id = new_record_id()
        now = datetime.now(UTC)
        capture = Capture(
            record_id=record_id,
            device_id=device_id,
            captured_at=now,
            received_at=received_at or now,
            trigger_id=trigger_id,
            trigger_type=TriggerType.MANUAL if trigger_id else TriggerType.EVENT,
            evaluation_status=evaluation_status,
            snapshot_key=snapshot_key or f"{device_id}/{now:%Y/%m/%d}/{record_id}.jpg",
            content_type="image/jpeg",
            size_bytes=3,
            width=1,
            height=1,
            sha256=hashlib.sha256(b"jpg").hexdigest(),
        )
        with self.sessions() as session:
            session.add(capture)
            session.flush()
            if trigger_id is not None and link:
                trigger = session.get(Trigger, trigger_id)
                assert trigger is not None
                trigger.status = TriggerStatus.EXECUTED
                trigger.capture_id = record_id
                trigger.executed_at = now
            session.commit()
        return record_id


@pytest.fixture
def rows(db: sessionmaker[Session]) -> Rows:
    return Rows(db)

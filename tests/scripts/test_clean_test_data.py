"""clean_test_data: the test org's captures, triggers and snapshot files; nothing of other orgs."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cloud.models import Capture, Device, Org, Trigger, TriggerStatus
from scripts import clean_test_data
from scripts.common import TEST_ORG_NAME
from tests.scripts.conftest import Rows, run_script
from tests.support.factories import Factory


def _snapshot(data_dir: Path, rows: Rows, device_id: str, **kwargs: object) -> Path:
    """A capture of a trigger, with its snapshot file on disk."""
    record = rows.capture(device_id, rows.trigger(device_id, TriggerStatus.SENT), **kwargs)
    with rows.sessions() as session:
        key = session.get(Capture, record).snapshot_key  # type: ignore[union-attr]
    path = data_dir / "snapshots" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"jpg")
    return path


def _count(sessions: sessionmaker[Session], model: type, device_id: str) -> int:
    with sessions() as session:
        return session.scalar(
            sa.select(sa.func.count()).select_from(model).where(model.device_id == device_id)
        )


@pytest.fixture
def two_orgs(factory: Factory) -> tuple[str, str]:
    """TEST_CAM_01 in the test org and OTHER_CAM in a customer's org."""
    test_org = factory.org(TEST_ORG_NAME)
    test_device = factory.device(org_id=test_org, device_id="TEST_CAM_01").device_id
    other_device = factory.device(device_id="OTHER_CAM").device_id
    return test_device, other_device


def test_yes_deletes_test_rows_and_files_and_leaves_other_orgs_alone(
    script_env: dict[str, str],
    two_orgs: tuple[str, str],
    rows: Rows,
    db: sessionmaker[Session],
    capsys: pytest.CaptureFixture[str],
) -> None:
    test_device, other_device = two_orgs
    data_dir = Path(script_env["VISANT_DATA_DIR"])
    test_files = [_snapshot(data_dir, rows, test_device) for _ in range(2)]
    rows.trigger(test_device, TriggerStatus.EXPIRED)
    other_file = _snapshot(data_dir, rows, other_device)
    rows.trigger(other_device, TriggerStatus.PENDING)

    assert clean_test_data.main(["--yes"]) == 0
    assert (
        "Deleted 2 captures, 3 triggers and 2 snapshots of TEST_CAM_01" in capsys.readouterr().out
    )
    assert _count(db, Capture, test_device) == 0 and _count(db, Trigger, test_device) == 0
    assert not any(path.exists() for path in test_files)
    assert _count(db, Capture, other_device) == 1 and _count(db, Trigger, other_device) == 2
    assert other_file.exists()
    with db() as session:
        assert session.get(Device, test_device) is not None, "the device itself stays"
        assert session.scalar(sa.select(sa.func.count()).select_from(Org)) == 2


def test_declining_the_prompt_deletes_nothing(
    script_env: dict[str, str],
    two_orgs: tuple[str, str],
    rows: Rows,
    db: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    test_device, _ = two_orgs
    path = _snapshot(Path(script_env["VISANT_DATA_DIR"]), rows, test_device)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert clean_test_data.main([]) == 1
    assert "Aborted" in capsys.readouterr().out
    assert _count(db, Capture, test_device) == 1 and path.exists()


def test_snapshot_key_escaping_the_store_is_not_followed(
    script_env: dict[str, str],
    two_orgs: tuple[str, str],
    rows: Rows,
    tmp_path: Path,
) -> None:
    test_device, _ = two_orgs
    outside = tmp_path / "precious.jpg"
    outside.write_bytes(b"keep me")
    trigger = rows.trigger(test_device, TriggerStatus.SENT)
    rows.capture(test_device, trigger, snapshot_key="../../precious.jpg")
    assert clean_test_data.main(["--yes"]) == 0
    assert outside.read_bytes() == b"keep me"


def test_device_outside_the_test_org_is_refused(
    script_env: dict[str, str],
    two_orgs: tuple[str, str],
    rows: Rows,
    db: sessionmaker[Session],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, other_device = two_orgs
    rows.trigger(other_device, TriggerStatus.PENDING)
    assert clean_test_data.main(["--yes", "--device-id", other_device]) == 1
    assert "not in the test org" in capsys.readouterr().err
    assert _count(db, Trigger, other_device) == 1


def test_no_test_org_is_nothing_to_do(
    script_env: dict[str, str], factory: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    factory.device()
    assert clean_test_data.main(["--yes"]) == 0
    assert "nothing to clean" in capsys.readouterr().out


@pytest.mark.parametrize("how", [["scripts/clean_test_data.py"], ["-m", "scripts.clean_test_data"]])
def test_runs_as_a_file_and_as_a_module_and_reads_the_answer_from_stdin(
    script_env: dict[str, str],
    two_orgs: tuple[str, str],
    rows: Rows,
    db: sessionmaker[Session],
    how: list[str],
) -> None:
    test_device, _ = two_orgs
    rows.trigger(test_device, TriggerStatus.PENDING)
    result = run_script(how, script_env, stdin="y\n")
    assert result.returncode == 0, result.stderr
    assert _count(db, Trigger, test_device) == 0

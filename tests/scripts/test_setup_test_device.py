"""setup_test_device: idempotent org/user/device, a fresh key and token on every run."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cloud.core.security import hash_secret, secrets_match, verify_password
from cloud.models import Device, DeviceStatus, Org, User, UserToken
from scripts import setup_test_device
from scripts.common import DEFAULT_TEST_PASSWORD, TEST_ORG_NAME, TEST_USER_EMAIL
from tests.scripts.conftest import run_script
from tests.support.factories import TEST_SECRET_KEY, Factory


def _setup(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, str]:
    assert setup_test_device.main(["--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def _device(sessions: sessionmaker[Session], device_id: str = "TEST_CAM_01") -> Device:
    with sessions() as session:
        device = session.get(Device, device_id)
        assert device is not None
        return device


def test_first_run_creates_org_user_and_device_with_a_ten_second_schedule(
    script_env: dict[str, str], db: sessionmaker[Session], capsys: pytest.CaptureFixture[str]
) -> None:
    out = _setup(capsys)
    assert set(out) == {"org_id", "user_email", "user_token", "device_id", "device_key", "api_url"}
    assert out["user_email"] == TEST_USER_EMAIL and out["device_id"] == "TEST_CAM_01"
    assert out["api_url"] == "http://127.0.0.1:8000"
    device = _device(db)
    assert str(device.org_id) == out["org_id"]
    assert (
        device.config["trigger"] | {"enabled": True, "interval_seconds": 10}
        == device.config["trigger"]
    )
    assert device.status is DeviceStatus.ACTIVE
    assert device.next_trigger_at is not None, "the scheduler owes it a slot"
    assert secrets_match(device.key_hash, out["device_key"], TEST_SECRET_KEY)
    with db() as session:
        user = session.scalar(sa.select(User).where(User.email == TEST_USER_EMAIL))
        assert user is not None and verify_password(DEFAULT_TEST_PASSWORD, user.password_hash)
        token_hash = hash_secret(out["user_token"], TEST_SECRET_KEY)
        assert session.scalar(sa.select(UserToken).where(UserToken.token_hash == token_hash))


def test_second_run_keeps_org_and_device_but_rotates_the_key(
    script_env: dict[str, str], db: sessionmaker[Session], capsys: pytest.CaptureFixture[str]
) -> None:
    first = _setup(capsys)
    second = _setup(capsys)
    assert second["org_id"] == first["org_id"]
    assert second["device_key"] != first["device_key"]
    assert second["user_token"] != first["user_token"]
    device = _device(db)
    assert secrets_match(device.key_hash, second["device_key"], TEST_SECRET_KEY)
    assert not secrets_match(device.key_hash, first["device_key"], TEST_SECRET_KEY)
    assert device.config_version == 1, "same config: no new version pushed"
    with db() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Org)) == 1
        assert session.scalar(sa.select(sa.func.count()).select_from(Device)) == 1
        assert session.scalar(sa.select(sa.func.count()).select_from(User)) == 1


def test_new_user_token_authenticates_on_the_api(
    script_env: dict[str, str], live_server, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _setup(capsys)
    with live_server.client() as client:
        response = client.get(
            "/v1/devices", headers={"Authorization": f"Bearer {out['user_token']}"}
        )
        login = client.post(
            "/v1/auth/token", json={"email": TEST_USER_EMAIL, "password": DEFAULT_TEST_PASSWORD}
        )
    assert response.status_code == 200
    assert [d["device_id"] for d in response.json()["devices"]] == ["TEST_CAM_01"]
    assert login.status_code == 200


def test_interval_and_device_id_options_and_config_change_bumps_version(
    script_env: dict[str, str], db: sessionmaker[Session], capsys: pytest.CaptureFixture[str]
) -> None:
    _setup(capsys, "--device-id", "DEMO-1", "--interval", "5")
    assert _device(db, "DEMO-1").config["trigger"]["interval_seconds"] == 5
    _setup(capsys, "--device-id", "DEMO-1", "--interval", "7")
    device = _device(db, "DEMO-1")
    assert device.config["trigger"]["interval_seconds"] == 7
    assert device.config_version == 2


def test_password_from_environment(
    script_env: dict[str, str],
    db: sessionmaker[Session],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VISANT_TEST_PASSWORD", "from-the-env")
    _setup(capsys)
    with db() as session:
        user = session.scalar(sa.select(User).where(User.email == TEST_USER_EMAIL))
        assert user is not None and verify_password("from-the-env", user.password_hash)


def test_refuses_a_device_id_owned_by_another_org(
    script_env: dict[str, str],
    factory: Factory,
    db: sessionmaker[Session],
    capsys: pytest.CaptureFixture[str],
) -> None:
    other = factory.device(device_id="TEST_CAM_01")
    assert setup_test_device.main(["--json", "--force"]) == 1
    assert "another org" in capsys.readouterr().err
    device = _device(db)
    assert device.org_id == other.org_id
    assert secrets_match(device.key_hash, other.key, TEST_SECRET_KEY), "its key was not touched"
    with db() as session:
        assert session.scalar(sa.select(Org).where(Org.name == TEST_ORG_NAME)) is None


@pytest.mark.parametrize(
    "how", [["scripts/setup_test_device.py"], ["-m", "scripts.setup_test_device"]]
)
def test_runs_as_a_file_and_as_a_module(script_env: dict[str, str], how: list[str]) -> None:
    result = run_script([*how, "--json"], script_env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["device_key"].startswith("vsk_")


def test_refuses_a_database_with_real_orgs_unless_forced(
    script_env: dict[str, str],
    factory: Factory,
    db: sessionmaker[Session],
    capsys: pytest.CaptureFixture[str],
) -> None:
    factory.org("Acme Production")
    assert setup_test_device.main(["--json"]) == 1
    assert "non-test orgs (Acme Production)" in capsys.readouterr().err
    with db() as session:
        assert session.scalar(sa.select(Org).where(Org.name == TEST_ORG_NAME)) is None
    assert setup_test_device.main(["--json", "--force"]) == 0

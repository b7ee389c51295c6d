"""`python -m cloud <account command>` as real subprocesses on the test database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from cloud.core.config import Settings
from tests.support.factories import TEST_SECRET_KEY
from tests.support.live_server import LiveServer

PROJECT_ROOT = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT = 60  # seconds; a loaded 2-core machine starts Python slowly


@pytest.fixture
def cli(database_url: str, db: sessionmaker[Session], tmp_path: Path):  # noqa: ANN201
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "VISANT_SECRET_KEY": TEST_SECRET_KEY,
        "VISANT_DATA_DIR": str(tmp_path / "data"),
    }

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cloud", *args],
            cwd=PROJECT_ROOT,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )

    return run


def test_first_org_and_admin_from_the_command_line_can_sign_in(
    cli, start_server, settings: Settings
) -> None:  # noqa: ANN001
    org = cli("create-org", "Acme")
    assert org.returncode == 0, org.stderr
    org_id = org.stdout.strip()
    assert len(org_id) == 36 and org.stdout.count("\n") == 1
    user = cli(
        "create-user",
        "--org",
        "Acme",
        "--email",
        "Ops@Acme.test",
        "--role",
        "admin",
        "--password-stdin",
        "--json",
        stdin="a long enough password\n",
    )
    assert user.returncode == 0, user.stderr
    created = json.loads(user.stdout)
    assert created["org_id"] == org_id and created["email"] == "ops@acme.test"
    assert "a long enough password" not in user.stdout + user.stderr
    server: LiveServer = start_server()
    with server.client() as client:
        login = client.post(
            "/v1/auth/token", json={"email": "ops@acme.test", "password": "a long enough password"}
        )
    assert login.status_code == 200
    listed = cli("list-users", "--org", org_id, "--json")
    assert [u["email"] for u in json.loads(listed.stdout)["users"]] == ["ops@acme.test"]


def test_role_deactivation_and_token_commands(cli) -> None:  # noqa: ANN001
    assert cli("create-org", "Beta").returncode == 0
    for email, role in (("a@beta.test", "admin"), ("b@beta.test", "operator")):
        made = cli(
            "create-user", "--org", "Beta", "--email", email, "--role", role, "--password-stdin",
            stdin="password-for-" + email + "\n",
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
    role = cli("set-role", "--email", "b@beta.test", "--role", "viewer")
    assert (role.returncode, role.stdout) == (0, "b@beta.test is now viewer\n")
    revoked = cli("revoke-tokens", "--email", "b@beta.test", "--json")
    assert json.loads(revoked.stdout)["tokens_revoked"] == 0
    off = cli("deactivate-user", "--email", "b@beta.test")
    assert off.returncode == 0 and "deactivated" in off.stdout
    last_admin = cli("deactivate-user", "--email", "a@beta.test")
    assert last_admin.returncode == 1
    assert last_admin.stderr.strip() == (
        "python -m cloud deactivate-user: error: a@beta.test is the org's last active admin"
    )


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("create-user", "--org", "Nope", "--email", "x@y.test", "--role", "admin",
          "--password-stdin"), "long enough pw\n", "org 'Nope' not found"),
        (("create-user", "--org", "Gamma", "--email", "x@y.test", "--role", "admin",
          "--password-stdin"), "short\n", "at least 8 characters"),
        (("create-user", "--org", "Gamma", "--email", "not-an-email", "--role", "admin",
          "--password-stdin"), "long enough pw\n", "invalid email"),
        (("create-user", "--org", "Gamma", "--email", "x@y.test", "--role", "admin"),
         "", "use --password-stdin"),
        (("create-org", "Gamma"), None, "org 'Gamma' already exists"),
        (("set-role", "--email", "ghost@y.test", "--role", "viewer"), None, "not found"),
    ],
)  # fmt: skip
def test_bad_input_exits_1_with_one_clear_line(cli, args, stdin, message) -> None:  # noqa: ANN001
    assert cli("create-org", "Gamma").returncode == 0
    result = cli(*args, stdin=stdin)
    assert result.returncode == 1
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert result.stdout == ""


def test_unknown_role_is_a_usage_error_and_serve_stays_the_default(cli) -> None:  # noqa: ANN001
    bad = cli("set-role", "--email", "a@b.test", "--role", "root")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
    helped = cli("--help")
    assert helped.returncode == 0 and "create-org" in helped.stdout
    serve_help = cli("--port", "1", "--help")
    assert serve_help.returncode == 0 and "--data-dir" in serve_help.stdout


def test_migrate_applies_the_schema_on_database_url(cli) -> None:  # noqa: ANN001
    result = cli("migrate")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "database schema is at the latest revision\n"

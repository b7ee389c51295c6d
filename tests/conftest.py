"""Shared fixtures: one real PostgreSQL per session, migrated once, emptied before each test."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cloud.core.config import Settings
from cloud.core.database_url import create_database, start_embedded_postgres, stop_embedded_postgres
from cloud.core.db import create_sync_session_factory
from cloud.core.migrate import upgrade_to_head
from cloud.models import Base
from tests.support.factories import TEST_SECRET_KEY, Factory
from tests.support.live_server import LiveServer


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    server_url = os.environ.get("TEST_DATABASE_URL")
    if not server_url:
        pgroot = Path(tempfile.mkdtemp(prefix="visant-test-pg-"))
        server_url = start_embedded_postgres(pgroot / "pgdata")
    url = create_database(server_url, "visant_test")
    upgrade_to_head(url)
    yield url
    if not os.environ.get("TEST_DATABASE_URL"):
        stop_embedded_postgres()


@pytest.fixture
def pg_data_root() -> Iterator[Path]:
    """A temporary directory for an embedded PostgreSQL's data dir, outside ``tmp_path``.

    Run as root, PostgreSQL runs as its own user and must traverse every parent of its data
    dir; pgserver opens them up once, at init. Every pytest session that starts on this
    machine (another run beside this one) resets /tmp/pytest-of-root to 0700, after which a
    server under ``tmp_path`` fails to init or restart with "Permission denied".
    """
    root = Path(tempfile.mkdtemp(prefix="visant-test-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def sync_sessions(database_url: str) -> sessionmaker[Session]:
    return create_sync_session_factory(database_url)


@pytest.fixture
def db(sync_sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """The test database, emptied: each test starts from no rows."""
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with sync_sessions() as session:
        session.execute(sa.text(f"TRUNCATE {tables} CASCADE"))
        session.commit()
    return sync_sessions


@pytest.fixture
def factory(db: sessionmaker[Session]) -> Factory:
    return Factory(db)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Test settings: a private data dir, the test secret, short timers."""
    return Settings(
        secret_key=TEST_SECRET_KEY,
        data_dir=tmp_path / "data",
        keepalive_seconds=1.0,
        scheduler_enabled=False,
    )


@pytest.fixture
def start_server(
    database_url: str, settings: Settings, db: sessionmaker[Session]
) -> Iterator[Callable[..., LiveServer]]:
    """Start real uvicorn servers (`start_server(**setting_overrides)`); stopped at teardown."""
    servers: list[LiveServer] = []

    def start(**overrides: Any) -> LiveServer:
        server_settings = settings.model_copy(update=overrides)
        server = LiveServer(server_settings, database_url).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server._thread is not None and server._thread.is_alive():
            assert server.stop() < 10.0, "server took too long to stop"


@pytest.fixture
def live_server(start_server: Callable[..., LiveServer]) -> LiveServer:
    """One real server on a free port with the test settings."""
    return start_server()

"""Shared by the operator scripts: test fixture names; the database, found as the server does."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from cloud.core.config import Settings
from cloud.core.database_url import resolve_database_url, stop_embedded_postgres
from cloud.core.db import create_sync_session_factory
from cloud.core.migrate import upgrade_to_head

TEST_ORG_NAME = "Visant Test Org"
TEST_USER_EMAIL = "test@visant.local"
TEST_DEVICE_ID = "TEST_CAM_01"
DEFAULT_TEST_PASSWORD = "visant-test-password"  # noqa: S105 - a documented test fixture
TEST_PASSWORD_ENV = "VISANT_TEST_PASSWORD"  # noqa: S105 - an environment variable's name

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

DATABASE_HELP = (
    "The database is found as `python -m cloud` finds it: DATABASE_URL if set, else the "
    "embedded PostgreSQL under --data-dir / VISANT_DATA_DIR (default ./.visant), started "
    "(or joined, if the server runs) and migrated as needed."
)


class ScriptError(Exception):
    """A condition that ends a script with a one-line message (exit 1)."""


@dataclass
class Database:
    """An open database for one script run."""

    settings: Settings
    url: str
    sessions: sessionmaker[Session]
    embedded: bool


def add_database_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="data dir of the embedded database and snapshots (env VISANT_DATA_DIR)",
    )


def load_settings(data_dir: Path | None) -> Settings:
    """Settings as the server reads them (environment, `.env`), with `--data-dir` applied."""
    try:
        return Settings(data_dir=data_dir) if data_dir is not None else Settings()
    except ValidationError as exc:
        raise ScriptError(f"invalid settings: {exc}") from exc


@contextmanager
def open_database(data_dir: Path | None) -> Iterator[Database]:
    """The server's database: DATABASE_URL, else the embedded one (started or joined, migrated).

    Leaving the block releases this process's handle on the embedded server; the server stops
    only when no other process (a running `python -m cloud`) holds one.
    """
    settings = load_settings(data_dir)
    embedded = not (settings.database_url or os.environ.get("DATABASE_URL"))
    if embedded:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        url = resolve_database_url(settings.database_url, settings.embedded_pgdata)
        if embedded:
            upgrade_to_head(url)
        sessions = create_sync_session_factory(url)
        try:
            yield Database(settings, url, sessions, embedded)
        except ProgrammingError as exc:
            raise ScriptError(
                f"database schema missing or old (run `alembic upgrade head`): {exc.orig}"
            ) from exc
        except OperationalError as exc:
            raise ScriptError(f"cannot use the database: {exc.orig}") from exc
        finally:
            sessions.kw["bind"].dispose()
    finally:
        if embedded:
            stop_embedded_postgres()


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def fail(prog: str, message: str) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return EXIT_FAILED

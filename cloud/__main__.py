"""`python -m cloud`: serve the API (embedded PostgreSQL unless DATABASE_URL is set)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from pydantic import ValidationError

from cloud.app import create_app
from cloud.core.config import Settings
from cloud.core.database_url import resolve_database_url, stop_embedded_postgres
from cloud.core.migrate import upgrade_to_head
from cloud.core.server import VisantServer, uvicorn_config

logger = logging.getLogger("cloud")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m cloud", description=__doc__)
    parser.add_argument("--host", help="bind address (env VISANT_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="bind port (env VISANT_PORT, default 8000)")
    parser.add_argument(
        "--data-dir", type=Path, help="embedded database and snapshots (env VISANT_DATA_DIR)"
    )
    return parser.parse_args(argv)


def load_settings(args: argparse.Namespace) -> Settings:
    overrides = {
        key: value
        for key, value in (("host", args.host), ("port", args.port), ("data_dir", args.data_dir))
        if value is not None
    }
    return Settings(**overrides)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(args)
    except ValidationError as exc:
        print(f"invalid settings: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    embedded = not (settings.database_url or os.environ.get("DATABASE_URL"))
    try:
        database_url = resolve_database_url(settings.database_url, settings.embedded_pgdata)
        if embedded:
            logger.info("embedded PostgreSQL in %s; applying migrations", settings.embedded_pgdata)
            upgrade_to_head(database_url)
        app = create_app(settings, database_url)
        server = VisantServer(
            uvicorn_config(app, settings.host, settings.port, settings.log_level), app
        )
        server.run()
    finally:
        if embedded:
            stop_embedded_postgres()
    return 0


if __name__ == "__main__":
    sys.exit(main())

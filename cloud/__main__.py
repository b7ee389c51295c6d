"""`python -m cloud`: serve the API (the default), or run an account command.

`python -m cloud [--port N ...]` serves; `python -m cloud create-org NAME`, `create-user`,
`list-users`, `set-role`, `deactivate-user`, `revoke-tokens`, `migrate` manage accounts
(docs/operations.md). Every command finds the database as `serve` does.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from cloud.accounts.cli import COMMANDS, add_account_commands, run_account_command
from cloud.accounts.database import database_url_for, uses_embedded
from cloud.api.fast_paths import FastPaths
from cloud.app import create_app
from cloud.core.config import Settings
from cloud.core.database_url import stop_embedded_postgres
from cloud.core.logs import configure_logging
from cloud.core.server import VisantServer, uvicorn_config

logger = logging.getLogger("cloud")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cloud", description=__doc__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser("serve", help="serve the API (the default command)")
    serve.add_argument("--host", help="bind address (env VISANT_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="bind port (env VISANT_PORT, default 8000)")
    serve.add_argument(
        "--data-dir", type=Path, help="embedded database and snapshots (env VISANT_DATA_DIR)"
    )
    serve.add_argument(
        "--verbose", action="store_true", help="debug logging, embedded PostgreSQL output too"
    )
    add_account_commands(commands)
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Arguments with `serve` assumed when no command is named (every older invocation)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS | {"serve"} and argv[0] not in ("-h", "--help")):
        argv.insert(0, "serve")
    return build_parser().parse_args(argv)


def load_settings(args: argparse.Namespace) -> Settings:
    overrides = {
        key: getattr(args, key, None)
        for key in ("host", "port", "data_dir")
        if getattr(args, key, None) is not None
    }
    return Settings(**overrides)


def serve(settings: Settings) -> int:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        database_url = database_url_for(settings)
        app = create_app(settings, database_url)
        config = uvicorn_config(
            FastPaths(app),
            settings.host,
            settings.port,
            settings.log_level,
            access_log=settings.access_log,
            own_logging=True,
        )
        VisantServer(config, app).run()
    finally:
        if uses_embedded(settings):
            stop_embedded_postgres()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(args)
    except ValidationError as exc:
        print(f"invalid settings: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        configure_logging(settings.log_level, settings.log_format, args.verbose)
        return serve(settings)
    configure_logging("DEBUG" if args.verbose else "WARNING", settings.log_format, args.verbose)
    return run_account_command(args, settings)


if __name__ == "__main__":
    sys.exit(main())

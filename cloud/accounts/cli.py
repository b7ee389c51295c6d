"""The account commands of `python -m cloud`: orgs, users, tokens, migrations.

Each prints one line (a JSON object with `--json`) and exits 0; bad input exits 1 with one
`python -m cloud <command>: error: ...` line on stderr. Passwords never come from argv (they
would sit in the shell history and in `ps`): a prompt, or `--password-stdin`.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from cloud.accounts import users
from cloud.accounts.audit import AuditAction, record_audit
from cloud.accounts.database import CommandDatabase, database_url_for, open_command_database
from cloud.core.config import Settings
from cloud.core.database_url import stop_embedded_postgres
from cloud.core.db import DatabaseUnavailable
from cloud.core.errors import ApiError
from cloud.core.migrate import upgrade_to_head
from cloud.models import User, UserRole

EXIT_OK = 0
EXIT_FAILED = 1
ROLES = [role.value for role in UserRole]


class CommandError(Exception):
    """Ends a command with a one-line message and exit status 1."""


Handler = Callable[[argparse.Namespace, CommandDatabase], Awaitable[dict[str, Any]]]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", type=Path, help="embedded database and snapshots (env VISANT_DATA_DIR)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--verbose", action="store_true", help="debug logging")


def add_account_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register every account command on the top-level parser's subcommands."""
    org = commands.add_parser("create-org", help="create an organisation; prints its id")
    org.add_argument("name")
    user = commands.add_parser("create-user", help="create a user; prints its id")
    user.add_argument("--org", required=True, help="org name or id")
    user.add_argument("--email", required=True)
    user.add_argument("--role", required=True, choices=ROLES)
    user.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin (one line)"
    )
    listing = commands.add_parser("list-users", help="one line per user")
    listing.add_argument("--org", help="only this org (name or id)")
    role = commands.add_parser("set-role", help="change a user's role")
    role.add_argument("--email", required=True, help="email or user id")
    role.add_argument("--role", required=True, choices=ROLES)
    for name, text in (
        ("deactivate-user", "the user can no longer sign in; their tokens are revoked"),
        ("revoke-tokens", "sign the user out everywhere"),
    ):
        commands.add_parser(name, help=text).add_argument(
            "--email", required=True, help="email or user id"
        )
    commands.add_parser("migrate", help="apply the database migrations (alembic upgrade head)")
    for parser in commands.choices.values():
        if parser.prog.split()[-1] != "serve":
            _common(parser)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise CommandError("no password on stdin")
        return password
    if not sys.stdin.isatty():
        raise CommandError("no terminal to prompt for the password; use --password-stdin")
    password = getpass.getpass("Password: ")
    if password != getpass.getpass("Repeat password: "):
        raise CommandError("passwords do not match")
    return password


def _user_document(user: User) -> dict[str, Any]:
    return {
        "user_id": str(user.user_id),
        "org_id": str(user.org_id),
        "email": user.email,
        "role": UserRole(user.role).value,
        "is_active": user.is_active,
    }


async def _create_org(args: argparse.Namespace, db: CommandDatabase) -> dict[str, Any]:
    async with db.sessions() as session:
        org = await users.create_org(session, args.name)
        await record_audit(session, None, AuditAction.ORG_CREATED, org.name, org_id=org.org_id)
        await session.commit()
        return {"org_id": str(org.org_id), "name": org.name, "_line": str(org.org_id)}


async def _create_user(args: argparse.Namespace, db: CommandDatabase) -> dict[str, Any]:
    users.normal_email(args.email)  # refuse a bad email before asking for a password
    password = users.check_password(args.password)
    async with db.sessions() as session:
        org = await users.find_org(session, args.org)
        user, _ = await users.create_user(
            session, org.org_id, args.email, UserRole(args.role), password
        )
        await record_audit(
            session,
            None,
            AuditAction.USER_CREATED,
            user.email,
            {"role": args.role},
            org_id=org.org_id,
        )
        await session.commit()
        return {**_user_document(user), "_line": str(user.user_id)}


async def _list_users(args: argparse.Namespace, db: CommandDatabase) -> dict[str, Any]:
    async with db.sessions() as session:
        org_id = (await users.find_org(session, args.org)).org_id if args.org else None
        found = await users.users_of(session, org_id)
    lines = [
        f"{u.email} {UserRole(u.role).value} {'active' if u.is_active else 'inactive'} {u.org_id}"
        for u in found
    ]
    return {"users": [_user_document(u) for u in found], "_line": "\n".join(lines)}


async def _set_role(args: argparse.Namespace, db: CommandDatabase) -> dict[str, Any]:
    async with db.sessions() as session:
        user = await users.find_user(session, args.email)
        previous = await users.set_role(session, user, UserRole(args.role))
        await record_audit(
            session,
            None,
            AuditAction.ROLE_CHANGED,
            user.email,
            {"from": previous.value, "to": args.role},
            org_id=user.org_id,
        )
        await session.commit()
        return {**_user_document(user), "_line": f"{user.email} is now {args.role}"}


async def _deactivate_user(args: argparse.Namespace, db: CommandDatabase) -> dict[str, Any]:
    async with db.sessions() as session:
        user = await users.find_user(session, args.email)
        revoked = await users.deactivate_user(session, user)
        await record_audit(
            session, None, AuditAction.USER_DEACTIVATED, user.email, org_id=user.org_id
        )
        await session.commit()
        line = f"{user.email} deactivated; {revoked} tokens revoked"
        return {**_user_document(user), "tokens_revoked": revoked, "_line": line}


async def _revoke_tokens(args: argparse.Namespace, db: CommandDatabase) -> dict[str, Any]:
    async with db.sessions() as session:
        user = await users.find_user(session, args.email)
        revoked = await users.revoke_tokens(session, user.user_id)
        await record_audit(
            session,
            None,
            AuditAction.TOKENS_REVOKED,
            user.email,
            {"count": revoked},
            org_id=user.org_id,
        )
        await session.commit()
        line = f"{revoked} tokens of {user.email} revoked"
        return {"email": user.email, "tokens_revoked": revoked, "_line": line}


HANDLERS: dict[str, Handler] = {
    "create-org": _create_org,
    "create-user": _create_user,
    "list-users": _list_users,
    "set-role": _set_role,
    "deactivate-user": _deactivate_user,
    "revoke-tokens": _revoke_tokens,
}
COMMANDS = frozenset({*HANDLERS, "migrate"})


def _migrate(settings: Settings) -> dict[str, Any]:
    try:
        url = database_url_for(settings, migrate_embedded=False)
        upgrade_to_head(url)
    finally:
        stop_embedded_postgres()
    return {"migrated": True, "_line": "database schema is at the latest revision"}


async def _run(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    async with open_command_database(settings) as db:
        return await HANDLERS[args.command](args, db)


def run_account_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run one parsed account command; prints its line (or JSON) and returns the exit status."""
    prog = f"python -m cloud {args.command}"
    try:
        if args.command == "create-user":
            args.password = _read_password(args.password_stdin)
        if args.command == "migrate":
            result = _migrate(settings)
        else:
            result = asyncio.run(_run(args, settings))
    except CommandError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except ApiError as exc:
        print(f"{prog}: error: {exc.detail}", file=sys.stderr)
        return EXIT_FAILED
    except (DBAPIError, DatabaseUnavailable, OSError, ValidationError) as exc:
        print(f"{prog}: error: cannot use the database: {exc}", file=sys.stderr)
        return EXIT_FAILED
    line = result.pop("_line")
    if args.json:
        print(json.dumps(result))
    elif line:
        print(line)
    return EXIT_OK

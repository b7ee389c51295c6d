"""Create (idempotently) the test org, user and device; print a fresh device key and user token.

Keys and tokens are stored hashed, so they cannot be shown again: every run rotates the
device key (the previous one stops working) and issues a new user token.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as `python scripts/x.py`: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from cloud.auth.service import TOKEN_LIFETIME  # noqa: E402
from cloud.core.config import Settings  # noqa: E402
from cloud.core.ids import DEVICE_ID_PATTERN  # noqa: E402
from cloud.core.security import (  # noqa: E402
    DEVICE_KEY_PREFIX,
    USER_TOKEN_PREFIX,
    hash_password,
    hash_secret,
    new_secret,
)
from cloud.devices.config_document import DeviceConfig  # noqa: E402
from cloud.devices.service import apply_config_change, config_document  # noqa: E402
from cloud.hub.envelopes import config_envelope, notify_command_statement  # noqa: E402
from cloud.models import Device, DeviceStatus, Org, User, UserRole, UserToken  # noqa: E402
from cloud.scheduling.slots import first_slot  # noqa: E402
from scripts.common import (  # noqa: E402
    DATABASE_HELP,
    DEFAULT_TEST_PASSWORD,
    EXIT_OK,
    TEST_DEVICE_ID,
    TEST_ORG_NAME,
    TEST_PASSWORD_ENV,
    TEST_USER_EMAIL,
    ScriptError,
    add_database_arguments,
    configure_logging,
    fail,
    open_database,
)

PROG = "setup_test_device"
DEFAULT_INTERVAL = 10  # seconds between scheduled captures


@dataclass
class TestSetup:
    """What a run created or found, with the secrets issued by this run."""

    org_id: str
    user_email: str
    user_token: str
    device_id: str
    device_key: str
    api_url: str
    created: list[str]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m scripts.{PROG}",
        description=__doc__,
        epilog=f"Test user {TEST_USER_EMAIL} in org {TEST_ORG_NAME!r}; password from --password, "
        f"else ${TEST_PASSWORD_ENV}, else {DEFAULT_TEST_PASSWORD!r} (re-running resets it). "
        + DATABASE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--device-id", default=TEST_DEVICE_ID, help="device id (default: %(default)s)"
    )
    parser.add_argument(
        "--interval",
        type=int,
        default=DEFAULT_INTERVAL,
        help="seconds between scheduled captures; 0 disables the schedule (default: %(default)s)",
    )
    parser.add_argument("--password", default=None, help="test user's password (see below)")
    parser.add_argument(
        "--api-url", default=None, help="API URL to print (default: from VISANT_HOST/VISANT_PORT)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--force",
        action="store_true",
        help="run even though the database holds orgs other than the test org",
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    add_database_arguments(parser)
    return parser


def _desired_config(interval: int) -> DeviceConfig:
    if interval <= 0:
        return DeviceConfig.model_validate({"trigger": {"enabled": False}})
    return DeviceConfig.model_validate({"trigger": {"enabled": True, "interval_seconds": interval}})


def _ensure_org(session: Session, created: list[str]) -> Org:
    org = session.scalar(sa.select(Org).where(Org.name == TEST_ORG_NAME))
    if org is None:
        org = Org(name=TEST_ORG_NAME)
        session.add(org)
        session.flush()
        created.append("org")
    return org


def _ensure_user(session: Session, org: Org, password: str, created: list[str]) -> User:
    user = session.scalar(sa.select(User).where(sa.func.lower(User.email) == TEST_USER_EMAIL))
    if user is None:
        user = User(org_id=org.org_id, email=TEST_USER_EMAIL, role=UserRole.ADMIN)
        session.add(user)
        created.append("user")
    elif user.org_id != org.org_id:
        raise ScriptError(f"{TEST_USER_EMAIL} exists in another org; refusing to take it over")
    user.password_hash = hash_password(password)
    user.is_active = True
    session.flush()
    return user


def _ensure_device(
    session: Session,
    settings: Settings,
    org: Org,
    user: User,
    device_id: str,
    config: DeviceConfig,
    created: list[str],
) -> tuple[Device, str]:
    key = new_secret(DEVICE_KEY_PREFIX)
    now = datetime.now(UTC)
    device = session.get(Device, device_id)
    if device is None:
        device = Device(
            device_id=device_id,
            org_id=org.org_id,
            friendly_name="Visant test camera",
            config=config_document(config),
            config_version=1,
            activated_by_user_id=user.user_id,
            activated_at=now,
            next_trigger_at=first_slot(config_document(config), now),
        )
        session.add(device)
        created.append("device")
        config_changed = False
    elif device.org_id != org.org_id:
        raise ScriptError(f"device {device_id} belongs to another org; refusing to touch it")
    else:
        device.key_rotated_at = now
        device.status = DeviceStatus.ACTIVE
        config_changed = apply_config_change(device, config)  # reschedules if it changed
        if device.next_trigger_at is None:
            device.next_trigger_at = first_slot(device.config, now)
    device.key_hash = hash_secret(key, settings.secret_key)
    device.key_prefix = key[:12]
    session.flush()
    if config_changed:
        _notify_config(session, device)
    return device, key


def _notify_config(session: Session, device: Device) -> None:
    """Push the new desired config to a connected agent (same NOTIFY as the devices API)."""
    session.execute(notify_command_statement(device.device_id, config_envelope(device)))


def _issue_token(session: Session, settings: Settings, user: User) -> str:
    token = new_secret(USER_TOKEN_PREFIX)
    session.add(
        UserToken(
            user_id=user.user_id,
            token_hash=hash_secret(token, settings.secret_key),
            expires_at=datetime.now(UTC) + TOKEN_LIFETIME,
        )
    )
    return token


def refuse_real_orgs(session: Session) -> None:
    """A database with real orgs is a production one: a known test password has no place there."""
    others = list(session.scalars(sa.select(Org.name).where(Org.name != TEST_ORG_NAME).limit(3)))
    if others:
        raise ScriptError(
            f"the database holds non-test orgs ({', '.join(others)}); refusing to create a test "
            "admin with a known password there (use --force if this is really a test database)"
        )


def setup_test_device(
    session: Session,
    settings: Settings,
    device_id: str,
    interval: int,
    password: str,
    force: bool = False,
) -> tuple[uuid.UUID, str, str, list[str]]:
    """Create or refresh org, user and device; return (org_id, device_key, user_token, created)."""
    if not force:
        refuse_real_orgs(session)
    if 0 < interval < settings.min_interval_seconds:
        raise ScriptError(f"--interval must be at least {settings.min_interval_seconds} s")
    created: list[str] = []
    config = _desired_config(interval)
    org = _ensure_org(session, created)
    user = _ensure_user(session, org, password, created)
    _, key = _ensure_device(session, settings, org, user, device_id, config, created)
    token = _issue_token(session, settings, user)
    session.commit()
    return org.org_id, key, token, created


def _print_human(result: TestSetup, interval: int) -> None:
    made = ", ".join(result.created) if result.created else "nothing (all existed)"
    schedule = f"every {interval} s" if interval > 0 else "disabled"
    print(f"Test org:    {TEST_ORG_NAME} ({result.org_id})")
    print(f"Test user:   {result.user_email}")
    print(f"Device:      {result.device_id} (schedule {schedule})")
    print(f"Created:     {made}")
    print()
    print("Shown once (stored hashed; the previous device key no longer works):")
    print(f"  device key: {result.device_key}")
    print(f"  user token: {result.user_token}")
    print()
    print("Run the agent:")
    print(
        f"  VISANT_API_KEY={result.device_key} python -m device.main_v2 "
        f"--api-url {result.api_url} --device-id {result.device_id} --camera-source 0"
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    password = args.password or os.environ.get(TEST_PASSWORD_ENV) or DEFAULT_TEST_PASSWORD
    try:
        _validate_device_id(args.device_id)
        with open_database(args.data_dir) as database:
            settings = database.settings
            with database.sessions() as session:
                org_id, key, token, created = setup_test_device(
                    session, settings, args.device_id, args.interval, password, args.force
                )
    except ScriptError as exc:
        return fail(PROG, str(exc))
    api_url = args.api_url or f"http://{settings.host}:{settings.port}"
    result = TestSetup(str(org_id), TEST_USER_EMAIL, token, args.device_id, key, api_url, created)
    if args.json:
        document = asdict(result)
        del document["created"]
        print(json.dumps(document))
    else:
        _print_human(result, args.interval)
    return EXIT_OK


def _validate_device_id(device_id: str) -> None:
    if not re.match(DEVICE_ID_PATTERN, device_id):
        raise ScriptError(f"invalid --device-id {device_id!r}")


if __name__ == "__main__":
    sys.exit(main())

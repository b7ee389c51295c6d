"""Data builders for tests: orgs, users with tokens, devices with keys (sync, psycopg2)."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from cloud.core.security import (
    DEVICE_KEY_PREFIX,
    USER_TOKEN_PREFIX,
    hash_password,
    hash_secret,
    new_secret,
)
from cloud.models import Device, DeviceStatus, Org, User, UserRole, UserToken

TEST_SECRET_KEY = "test-secret-key"
DEFAULT_PASSWORD = "correct horse battery staple"
_counter = itertools.count(1)


@dataclass
class UserWithToken:
    user_id: uuid.UUID
    org_id: uuid.UUID
    email: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class DeviceWithKey:
    device_id: str
    org_id: uuid.UUID
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


class Factory:
    """Creates rows through the real models; every call commits."""

    def __init__(self, sessions: sessionmaker[Session], secret_key: str = TEST_SECRET_KEY):
        self.sessions = sessions
        self.secret_key = secret_key

    def org(self, name: str | None = None) -> uuid.UUID:
        with self.sessions() as session:
            org = Org(name=name or f"org-{next(_counter)}-{uuid.uuid4().hex[:6]}")
            session.add(org)
            session.commit()
            return org.org_id

    def user(
        self,
        org_id: uuid.UUID | None = None,
        email: str | None = None,
        password: str | None = None,
        role: UserRole = UserRole.ADMIN,
    ) -> UserWithToken:
        org_id = org_id or self.org()
        email = email or f"user{next(_counter)}-{uuid.uuid4().hex[:6]}@example.test"
        password = password or DEFAULT_PASSWORD
        token = new_secret(USER_TOKEN_PREFIX)
        with self.sessions() as session:
            user = User(
                org_id=org_id, email=email, password_hash=hash_password(password), role=role
            )
            session.add(user)
            session.flush()
            session.add(
                UserToken(
                    user_id=user.user_id,
                    token_hash=hash_secret(token, self.secret_key),
                    expires_at=datetime.now(UTC) + timedelta(days=1),
                )
            )
            session.commit()
            return UserWithToken(user.user_id, org_id, email, password, token)

    def device(
        self,
        org_id: uuid.UUID | None = None,
        device_id: str | None = None,
        config: dict[str, Any] | None = None,
        status: DeviceStatus = DeviceStatus.ACTIVE,
        **columns: Any,
    ) -> DeviceWithKey:
        org_id = org_id or self.org()
        device_id = device_id or f"CAM_{next(_counter):05d}_{uuid.uuid4().hex[:6]}"
        key = new_secret(DEVICE_KEY_PREFIX)
        with self.sessions() as session:
            session.add(
                Device(
                    device_id=device_id,
                    org_id=org_id,
                    friendly_name=device_id,
                    status=status,
                    config=config or {},
                    config_version=1,
                    key_hash=hash_secret(key, self.secret_key),
                    key_prefix=key[:12],
                    activated_at=datetime.now(UTC),
                    **columns,
                )
            )
            session.commit()
        return DeviceWithKey(device_id, org_id, key)

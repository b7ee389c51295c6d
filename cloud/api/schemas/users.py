"""Bodies of the users, tokens and audit routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cloud.core.schema_types import StrictBody
from cloud.models import ConnectionEventKind, UserRole


class UserCreate(StrictBody):
    email: str = Field(min_length=3, max_length=320)
    role: UserRole = UserRole.VIEWER
    # Omitted: a one-time password is generated and returned once in the response.
    password: str | None = Field(default=None, min_length=8, max_length=1024)


class UserUpdate(StrictBody):
    role: UserRole | None = None
    is_active: bool | None = None


class PasswordChange(StrictBody):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=8, max_length=1024)


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    user_id: uuid.UUID
    org_id: uuid.UUID
    email: str
    role: UserRole
    is_active: bool
    created_at: datetime


class UserCreated(UserOut):
    one_time_password: str | None = None


class UserList(BaseModel):
    users: list[UserOut]


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    token_id: uuid.UUID
    created_at: datetime
    expires_at: datetime
    current: bool = False


class TokenList(BaseModel):
    tokens: list[TokenOut]


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    audit_id: uuid.UUID
    actor_user_id: uuid.UUID | None
    actor_email: str | None
    action: str
    target: str
    details: dict[str, Any]
    created_at: datetime


class AuditList(BaseModel):
    entries: list[AuditOut]
    next_cursor: str | None = None


class ConnectionEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    event: ConnectionEventKind
    # replaced, timeout, shutdown, suspended, inactive, key_rotated, deleted, client_closed...
    reason: str | None
    instance_id: str
    at: datetime


class ConnectionHistory(BaseModel):
    device_id: str
    events: list[ConnectionEventOut]

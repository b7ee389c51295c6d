"""Bodies of the auth routes: login and the token it returns."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from cloud.core.schema_types import StrictBody


class TokenRequest(StrictBody):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: datetime


class RevokeRequest(StrictBody):
    user_id: uuid.UUID


class RevokeResponse(BaseModel):
    revoked: int = Field(description="How many live tokens were revoked.")

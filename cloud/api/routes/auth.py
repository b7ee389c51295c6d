"""Login: email + password for a bearer token."""

from __future__ import annotations

from fastapi import APIRouter

from cloud.api.deps import SessionDep, SettingsDep
from cloud.api.schemas.auth import TokenRequest, TokenResponse
from cloud.auth.service import issue_token
from cloud.core.errors import ApiError

router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.post("/token", response_model=TokenResponse)
async def create_token(
    body: TokenRequest, session: SessionDep, settings: SettingsDep
) -> TokenResponse:
    """Exchange email and password for a bearer token."""
    issued = await issue_token(session, settings, body.email, body.password)
    if issued is None:
        raise ApiError(401, "invalid email or password")
    token, expires_at = issued
    return TokenResponse(access_token=token, expires_at=expires_at)

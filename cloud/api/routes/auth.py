"""Login, logout and token revocation."""

from __future__ import annotations

from fastapi import APIRouter, Request

from cloud.api.deps import (
    AdminUser,
    BearerToken,
    CurrentUser,
    SessionDep,
    SettingsDep,
    TokenCacheDep,
)
from cloud.api.schemas.auth import RevokeRequest, RevokeResponse, TokenRequest, TokenResponse
from cloud.api.schemas.errors import responses
from cloud.auth.service import issue_token
from cloud.auth.tokens import revoke_token, revoke_user_tokens
from cloud.core.errors import ApiError
from cloud.core.security import hash_secret

router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.post("/token", response_model=TokenResponse, responses=responses(401, 413, 422, 429, 503))
async def create_token(
    body: TokenRequest, request: Request, session: SessionDep, settings: SettingsDep
) -> TokenResponse:
    """Exchange email and password for a bearer token (attempts are rate limited)."""
    address = request.client.host if request.client else ""
    issued = await issue_token(session, settings, body.email, body.password, address)
    if issued is None:
        raise ApiError(401, "invalid email or password")
    token, expires_at = issued
    return TokenResponse(access_token=token, expires_at=expires_at)


@router.post("/logout", response_model=RevokeResponse, responses=responses(401, 503))
async def logout(
    user: CurrentUser,
    token: BearerToken,
    session: SessionDep,
    settings: SettingsDep,
    token_cache: TokenCacheDep,
) -> RevokeResponse:
    """Revoke the token this request carries; it stops working at once."""
    assert token is not None  # CurrentUser has authenticated it
    revoked = await revoke_token(session, settings, token)
    await session.commit()
    token_cache.forget(hash_secret(token, settings.secret_key))
    return RevokeResponse(revoked=revoked)


@router.post(
    "/revoke", response_model=RevokeResponse, responses=responses(401, 403, 404, 413, 422, 503)
)
async def revoke_user(
    body: RevokeRequest, admin: AdminUser, session: SessionDep, token_cache: TokenCacheDep
) -> RevokeResponse:
    """Admin: revoke every live token of a user of the org (signs them out everywhere)."""
    revoked = await revoke_user_tokens(session, admin, body.user_id)
    await session.commit()
    token_cache.forget_user(body.user_id)
    return RevokeResponse(revoked=revoked)

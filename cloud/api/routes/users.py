"""Users of the caller's org (admins), the caller's own password and tokens."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from cloud.accounts import users
from cloud.accounts.audit import AuditAction, record_audit
from cloud.api.deps import (
    AdminUser,
    BearerToken,
    CurrentUser,
    SessionDep,
    SettingsDep,
    TokenCacheDep,
)
from cloud.api.schemas.errors import responses
from cloud.api.schemas.users import (
    PasswordChange,
    TokenList,
    TokenOut,
    UserCreate,
    UserCreated,
    UserList,
    UserOut,
    UserUpdate,
)
from cloud.core.security import hash_secret

router = APIRouter(tags=["users"])


@router.post(
    "/v1/users",
    response_model=UserCreated,
    status_code=status.HTTP_201_CREATED,
    responses=responses(401, 403, 409, 413, 422, 503),
)
async def create_user(body: UserCreate, admin: AdminUser, session: SessionDep) -> UserCreated:
    """Add a user to the org; without a password a one-time one is returned, this once."""
    user, generated = await users.create_user(
        session, admin.org_id, body.email, body.role, body.password
    )
    await record_audit(session, admin, AuditAction.USER_CREATED, user.email, {"role": body.role})
    await session.commit()
    return UserCreated(**UserOut.model_validate(user).model_dump(), one_time_password=generated)


@router.get("/v1/users", response_model=UserList, responses=responses(401, 403, 503))
async def list_users(admin: AdminUser, session: SessionDep) -> UserList:
    """Every user of the org, by email."""
    found = await users.users_of(session, admin.org_id)
    return UserList(users=[UserOut.model_validate(u) for u in found])


@router.patch(
    "/v1/users/{user_id}",
    response_model=UserOut,
    responses=responses(401, 403, 404, 409, 413, 422, 503),
)
async def update_user(
    user_id: uuid.UUID,
    body: UserUpdate,
    admin: AdminUser,
    session: SessionDep,
    token_cache: TokenCacheDep,
) -> UserOut:
    """Change a user's role, or deactivate (tokens revoked) or reactivate them."""
    user = await users.org_user(session, admin.org_id, user_id)
    if body.role is not None and body.role != user.role:
        previous = await users.set_role(session, user, body.role)
        details = {"from": previous.value, "to": body.role.value}
        await record_audit(session, admin, AuditAction.ROLE_CHANGED, user.email, details)
    if body.is_active is False and user.is_active:
        revoked = await users.deactivate_user(session, user)
        details = {"tokens_revoked": revoked}
        await record_audit(session, admin, AuditAction.USER_DEACTIVATED, user.email, details)
    elif body.is_active is True and not user.is_active:
        user.is_active = True
        await record_audit(session, admin, AuditAction.USER_REACTIVATED, user.email)
    await session.commit()
    token_cache.forget_user(user.user_id)  # other instances: within auth_cache_seconds
    return UserOut.model_validate(user)


@router.put(
    "/v1/users/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 413, 422, 429, 503),
)
async def change_password(
    body: PasswordChange,
    user: CurrentUser,
    token: BearerToken,
    session: SessionDep,
    settings: SettingsDep,
    token_cache: TokenCacheDep,
) -> Response:
    """Change the caller's password; their other tokens are revoked, this one stays."""
    keep = hash_secret(token or "", settings.secret_key)
    revoked = await users.change_password(
        session, user, body.current_password, body.new_password, keep
    )
    await record_audit(
        session, user, AuditAction.PASSWORD_CHANGED, user.email, {"tokens_revoked": revoked}
    )
    await session.commit()
    token_cache.forget_user(user.user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/v1/auth/tokens", response_model=TokenList, responses=responses(401, 503))
async def list_tokens(
    user: CurrentUser, token: BearerToken, session: SessionDep, settings: SettingsDep
) -> TokenList:
    """The caller's open tokens, newest first; `current` marks the one of this request."""
    current = hash_secret(token or "", settings.secret_key)
    found = await users.open_tokens(session, user.user_id)
    return TokenList(
        tokens=[
            TokenOut(
                token_id=t.token_id,
                created_at=t.created_at,
                expires_at=t.expires_at,
                current=t.token_hash == current,
            )
            for t in found
        ]
    )


@router.delete(
    "/v1/auth/tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 404, 422, 503),
)
async def revoke_token(
    token_id: uuid.UUID, user: CurrentUser, session: SessionDep, token_cache: TokenCacheDep
) -> Response:
    """Revoke one of the caller's tokens (another user's is 404)."""
    await users.revoke_token(session, user.user_id, token_id)
    await session.commit()
    token_cache.forget_user(user.user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

"""Console sign-in state: the session cookie (a user token), CSRF tokens, who is calling.

The cookie holds a token from the same machinery as the API's bearer tokens, so revoking it,
signing out, deactivating the user or the token's expiry end the session everywhere. The CSRF
token is an HMAC of that token with the secret key: the page carries it in a hidden field or
the `X-CSRF-Token` header, and a forged request from another site cannot compute it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.auth.service import authenticate_user, has_role
from cloud.core.config import Settings
from cloud.core.errors import ApiError
from cloud.models import User, UserRole

SESSION_COOKIE = "visant_session"
SIGN_IN_COOKIE = "visant_signin"  # CSRF for the sign-in form itself (there is no session yet)
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"


class SignInRequired(Exception):
    """No valid session: pages redirect to the sign-in page, fetches get 401."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in user of a console request, with what the page may offer them."""

    user: User
    token: str
    csrf: str

    @property
    def can_operate(self) -> bool:
        return has_role(self.user, UserRole.OPERATOR)

    @property
    def is_admin(self) -> bool:
        return has_role(self.user, UserRole.ADMIN)


def csrf_token(token: str, secret_key: str) -> str:
    return hmac.new(secret_key.encode(), b"csrf:" + token.encode(), hashlib.sha256).hexdigest()


def new_sign_in_nonce() -> str:
    return secrets.token_urlsafe(24)


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session_cookie(
    response: Response, request: Request, token: str, expires_at: datetime
) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        expires=expires_at,
        path="/",
        httponly=True,
        samesite="lax",
        secure=is_https(request),
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=is_https(request)
    )


async def current_viewer(request: Request, session: AsyncSession) -> Viewer:
    """The session's user; SignInRequired when the cookie is absent or no longer valid."""
    settings: Settings = request.app.state.settings
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise SignInRequired
    try:
        user = await authenticate_user(session, settings, token, request.app.state.token_cache)
    except ApiError as exc:
        raise SignInRequired from exc
    return Viewer(user, token, csrf_token(token, settings.secret_key))


def check_csrf(viewer: Viewer, presented: str | None) -> None:
    """403 unless the request carries this session's CSRF token."""
    if not presented or not hmac.compare_digest(presented, viewer.csrf):
        raise ApiError(403, "the form expired or came from another site; reload the page")


def require(viewer: Viewer, role: UserRole) -> None:
    if not has_role(viewer.user, role):
        raise ApiError(403, f"this needs the {role.value} role")

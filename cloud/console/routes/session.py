"""Sign in and sign out: the same users, password check and login limits as the API."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from cloud.auth.service import issue_token
from cloud.auth.tokens import revoke_token
from cloud.console.auth import (
    SIGN_IN_COOKIE,
    SignInRequired,
    check_csrf,
    clear_session_cookie,
    current_viewer,
    is_https,
    new_sign_in_nonce,
    set_session_cookie,
)
from cloud.console.web import ConsoleRoute, SessionDep, presented_csrf, render
from cloud.core.errors import ApiError
from cloud.core.security import hash_secret

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
HOME = "/fleet"


def safe_next(target: str | None) -> str:
    """Only a path of this site: never `//evil.example` or `https://...` (open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return HOME
    return target


def sign_in_page(
    request: Request, next_url: str, message: str | None = None, status_code: int = 200
) -> Response:
    nonce = new_sign_in_nonce()
    context = {"nonce": nonce, "next": next_url, "message": message, "title": "Sign in"}
    response = render(request, "sign_in.html", context, status_code)
    response.set_cookie(
        SIGN_IN_COOKIE,
        nonce,
        max_age=3600,
        path="/sign-in",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )
    return response


@router.get("/sign-in")
async def sign_in_form(request: Request, session: SessionDep, next: str | None = None) -> Response:
    try:
        await current_viewer(request, session)
    except SignInRequired:
        return sign_in_page(request, safe_next(next))
    return RedirectResponse(safe_next(next), status_code=303)


@router.post("/sign-in")
async def sign_in(
    request: Request,
    session: SessionDep,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = HOME,
) -> Response:
    target = safe_next(next)
    expected = request.cookies.get(SIGN_IN_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, csrf):
        return sign_in_page(request, target, "The form expired; please try again.", 403)
    if not email or not password:
        return sign_in_page(request, target, "Enter your email and password.", 422)
    address = request.client.host if request.client else ""
    try:
        issued = await issue_token(session, request.app.state.settings, email, password, address)
    except ApiError as exc:
        if exc.status_code != 429:
            raise
        message = "Too many sign-in attempts; wait a few minutes and try again."
        return sign_in_page(request, target, message, 429)
    if issued is None:
        return sign_in_page(request, target, "Wrong email or password.", 401)
    token, expires_at = issued
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, request, token, expires_at)
    response.delete_cookie(SIGN_IN_COOKIE, path="/sign-in")
    return response


@router.post("/sign-out")
async def sign_out(request: Request, session: SessionDep) -> Response:
    """Revoke the session's token (it stops working on every instance) and drop the cookie."""
    response = RedirectResponse("/sign-in", status_code=303)
    try:
        viewer = await current_viewer(request, session)
    except SignInRequired:
        clear_session_cookie(response, request)
        return response
    check_csrf(viewer, await presented_csrf(request))
    settings = request.app.state.settings
    await revoke_token(session, settings, viewer.token)
    await session.commit()
    request.app.state.token_cache.forget(hash_secret(viewer.token, settings.secret_key))
    clear_session_cookie(response, request)
    return response

"""The users page (admins): create (one-time password shown once), change role, deactivate,
reactivate; and every user's own account page to change their password. All through the
accounts service, with the users API's rules (an org keeps an active admin) and audit."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from cloud.accounts import users
from cloud.accounts.audit import AuditAction, record_audit
from cloud.console.auth import Viewer
from cloud.console.refusal import rolled_back
from cloud.console.user_rows import user_rows
from cloud.console.web import AdminDep, ConsoleRoute, SessionDep, ViewerDep, acting, render
from cloud.core.errors import ApiError
from cloud.core.security import hash_secret
from cloud.models import UserRole

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
ROLES = tuple(role.value for role in UserRole)
NOTICES = {
    "role": "Role changed.",
    "deactivated": "User deactivated: they are signed out everywhere.",
    "reactivated": "User reactivated.",
    "password": "Password changed; your other sessions were signed out.",
}
# Any role may change their own password; the form still carries CSRF.
SignedInActing = Annotated[Viewer, Depends(acting(UserRole.VIEWER))]


def admin_only(viewer: Viewer) -> None:
    if not viewer.is_admin:
        raise ApiError(403, "only admins can see and change the users of the organisation")


def user_id_of(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError as exc:
        raise ApiError(404, "user not found") from exc


async def users_page(
    request: Request,
    viewer: Viewer,
    session: SessionDep,
    *,
    problem: str | None = None,
    status_code: int = 200,
    form: dict[str, str] | None = None,
) -> Response:
    context = {
        "viewer": viewer,
        "title": "Users",
        "nav": "users",
        "rows": await user_rows(session, viewer.user.org_id),
        "roles": ROLES,
        "form": form or {"email": "", "role": UserRole.VIEWER.value},
        "notice": NOTICES.get(request.query_params.get("done", "")),
        "problem": problem,
    }
    return render(request, "users.html", context, status_code)


@router.get("/users")
async def users_list(request: Request, viewer: ViewerDep, session: SessionDep) -> Response:
    admin_only(viewer)
    return await users_page(request, viewer, session)


@router.post("/users")
async def create(
    request: Request,
    viewer: AdminDep,
    session: SessionDep,
    email: Annotated[str, Form(max_length=320)] = "",
    role: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """A new user with a one-time password, shown on this response only."""
    try:
        if role not in ROLES:
            raise ApiError(422, "role: choose viewer, operator or admin")
        created, password = await users.create_user(
            session, viewer.user.org_id, email, UserRole(role), None
        )
        details = {"role": role, "via": "console"}
        await record_audit(session, viewer.user, AuditAction.USER_CREATED, created.email, details)
        await session.commit()
    except ApiError as exc:
        if exc.status_code not in (409, 422):
            raise
        await rolled_back(session, viewer)
        form = {"email": email, "role": role}
        return await users_page(
            request, viewer, session, problem=exc.detail, status_code=exc.status_code, form=form
        )
    context = {"viewer": viewer, "title": "New user", "nav": "users"}
    return render(request, "user_created.html", {**context, "u": created, "password": password})


@router.post("/users/{user_id}/role")
async def change_role(
    request: Request,
    user_id: str,
    viewer: AdminDep,
    session: SessionDep,
    role: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    target = await users.org_user(session, viewer.user.org_id, user_id_of(user_id))
    if role not in ROLES:
        return await users_page(
            request,
            viewer,
            session,
            problem="role: choose viewer, operator or admin",
            status_code=422,
        )
    if UserRole(role) != target.role:
        try:
            previous = await users.set_role(session, target, UserRole(role))
        except ApiError as exc:
            await rolled_back(session, viewer)
            return await users_page(
                request, viewer, session, problem=exc.detail, status_code=exc.status_code
            )
        details = {"from": previous.value, "to": role, "via": "console"}
        await record_audit(session, viewer.user, AuditAction.ROLE_CHANGED, target.email, details)
        await session.commit()
        request.app.state.token_cache.forget_user(target.user_id)
    return RedirectResponse("/users?done=role", status_code=303)


@router.post("/users/{user_id}/active")
async def change_active(
    request: Request,
    user_id: str,
    viewer: AdminDep,
    session: SessionDep,
    action: Annotated[str, Form(pattern="^(deactivate|reactivate)$")],
) -> Response:
    target = await users.org_user(session, viewer.user.org_id, user_id_of(user_id))
    if action == "deactivate" and target.is_active:
        try:
            revoked = await users.deactivate_user(session, target)
        except ApiError as exc:
            await rolled_back(session, viewer)
            return await users_page(
                request, viewer, session, problem=exc.detail, status_code=exc.status_code
            )
        details = {"tokens_revoked": revoked, "via": "console"}
        await record_audit(
            session, viewer.user, AuditAction.USER_DEACTIVATED, target.email, details
        )
    elif action == "reactivate" and not target.is_active:
        target.is_active = True
        await record_audit(
            session, viewer.user, AuditAction.USER_REACTIVATED, target.email, {"via": "console"}
        )
    await session.commit()
    request.app.state.token_cache.forget_user(target.user_id)
    done = "deactivated" if action == "deactivate" else "reactivated"
    return RedirectResponse(f"/users?done={done}", status_code=303)


def account_page(
    request: Request, viewer: Viewer, problem: str | None = None, status_code: int = 200
) -> Response:
    context = {
        "viewer": viewer,
        "title": "Your account",
        "nav": "account",
        "notice": NOTICES.get(request.query_params.get("done", "")),
        "problem": problem,
    }
    return render(request, "account.html", context, status_code)


@router.get("/account")
async def account(request: Request, viewer: ViewerDep) -> Response:
    return account_page(request, viewer)


@router.post("/account/password")
async def change_password(
    request: Request,
    viewer: SignedInActing,
    session: SessionDep,
    current_password: Annotated[str, Form(max_length=1024)] = "",
    new_password: Annotated[str, Form(max_length=1024)] = "",
    repeat_password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    """The API's password change: this session stays, the user's other tokens are revoked."""
    if new_password != repeat_password:
        return account_page(request, viewer, "the two new passwords differ", 422)
    settings = request.app.state.settings
    keep = hash_secret(viewer.token, settings.secret_key)
    try:
        revoked = await users.change_password(
            session, viewer.user, current_password, new_password, keep
        )
    except ApiError as exc:
        if exc.status_code not in (403, 422):
            raise
        await rolled_back(session, viewer)
        return account_page(request, viewer, exc.detail, exc.status_code)
    await record_audit(
        session,
        viewer.user,
        AuditAction.PASSWORD_CHANGED,
        viewer.user.email,
        {"tokens_revoked": revoked, "via": "console"},
    )
    await session.commit()
    request.app.state.token_cache.forget_user(viewer.user.user_id)
    return RedirectResponse("/account?done=password", status_code=303)

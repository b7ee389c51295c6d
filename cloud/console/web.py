"""Rendering for the console: templates, the route class that turns every failure into a
page message (or a JSON `detail` for the page's own fetches), and the request dependencies."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession

from cloud import __version__
from cloud.console import formatting
from cloud.console.auth import (
    CSRF_FIELD,
    CSRF_HEADER,
    SignInRequired,
    Viewer,
    check_csrf,
    current_viewer,
    require,
)
from cloud.core.db import DatabaseUnavailable
from cloud.core.errors import DATABASE_BUSY_RETRY_AFTER, ApiError, is_database_unavailable
from cloud.models import UserRole

logger = logging.getLogger(__name__)

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals["version"] = __version__
templates.env.filters.update(formatting.FILTERS)
# Pages are for the signed-in user only, never framed, never cached by a shared proxy.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STATUS_TITLES = {
    400: "That request was not understood",
    401: "Please sign in",
    403: "Not allowed",
    404: "Not found",
    409: "That changed meanwhile",
    413: "Too large",
    422: "Please check the form",
    429: "Too many requests",
    503: "The service is unavailable",
}


def wants_json(request: Request) -> bool:
    """The page's own fetches (and API-minded clients) get JSON; browsers get pages."""
    if request.headers.get("x-requested-with") == "fetch":
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    context = dict(context or {})
    context.setdefault("viewer", None)
    response = templates.TemplateResponse(
        request, name, context, status_code=status_code, headers={**PAGE_HEADERS, **(headers or {})}
    )
    return response  # type: ignore[return-value]


def error_response(
    request: Request, status_code: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    if wants_json(request):
        return JSONResponse({"detail": message}, status_code=status_code, headers=headers)
    title = STATUS_TITLES.get(status_code, "Something went wrong")
    context = {"title": title, "message": message, "status_code": status_code}
    return render(request, "error.html", context, status_code, headers)


def sign_in_redirect(request: Request) -> Response:
    if wants_json(request):
        return JSONResponse({"detail": "please sign in again"}, status_code=401)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/sign-in?next={quote(target, safe='')}", status_code=303)


def validation_message(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "the form is incomplete"
    first = errors[0]
    field = ".".join(str(part) for part in first.get("loc", ())[1:]) or "form"
    return f"{field}: {first.get('msg', 'invalid')}"


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class ConsoleRoute(APIRoute):
    """Every failure of a console route is a friendly page (or a JSON `detail` to a fetch)."""

    def get_route_handler(self) -> Handler:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except SignInRequired:
                return sign_in_redirect(request)
            except ApiError as exc:
                return error_response(request, exc.status_code, exc.detail, exc.headers)
            except RequestValidationError as exc:
                return error_response(request, 422, validation_message(exc))
            except PoolTimeout:
                busy = {"Retry-After": DATABASE_BUSY_RETRY_AFTER}
                return error_response(request, 503, "the database is busy; try again soon", busy)
            except (DatabaseUnavailable, DBAPIError) as exc:
                if not is_database_unavailable(exc):
                    logger.exception("console error on %s %s", request.method, request.url.path)
                    return error_response(request, 500, "something went wrong on our side")
                return error_response(
                    request, 503, "the database is unavailable; try again in a few seconds"
                )
            except Exception:  # noqa: BLE001 - a bug is a friendly 500 page, logged here
                logger.exception("console error on %s %s", request.method, request.url.path)
                return error_response(request, 500, "something went wrong on our side")

        return handler


async def console_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.session_factory() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(console_session)]


async def signed_in(request: Request, session: SessionDep) -> Viewer:
    return await current_viewer(request, session)


async def presented_csrf(request: Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        value = (await request.form()).get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


def acting(role: UserRole) -> Callable[..., Coroutine[Any, Any, Viewer]]:
    """A dependency: the signed-in user with `role` or above, on a request carrying CSRF."""

    async def dependency(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> Viewer:
        check_csrf(viewer, await presented_csrf(request))
        require(viewer, role)
        return viewer

    return dependency


ViewerDep = Annotated[Viewer, Depends(signed_in)]
OperatorDep = Annotated[Viewer, Depends(acting(UserRole.OPERATOR))]
AdminDep = Annotated[Viewer, Depends(acting(UserRole.ADMIN))]

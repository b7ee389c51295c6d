"""JSON error bodies for every failure a client can see; no stack trace leaves the server."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloud.core.db import DatabaseUnavailable

logger = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = "database unavailable"
DATABASE_RETRY_AFTER = "5"  # seconds: about what a PostgreSQL restart or failover takes
# Every pooled connection stayed in use for VISANT_DB_POOL_TIMEOUT_SECONDS: overload, not an
# outage, so a retry soon may find one.
DATABASE_BUSY = "database busy"
DATABASE_BUSY_RETRY_AFTER = "1"
FASTAPI_BODY_PARSE_ERROR = "There was an error parsing the body"  # FastAPI's own 400 text
BODY_NOT_JSON = "invalid request: body is not UTF-8 JSON"


class ApiError(Exception):
    """A refusal with a status code and a stable `detail`."""

    def __init__(self, status_code: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = headers


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == FASTAPI_BODY_PARSE_ERROR:
            # Bytes that do not decode (not UTF-8): a refused body like any other, so 422.
            return JSONResponse({"detail": BODY_NOT_JSON}, status_code=422)
        return JSONResponse(
            {"detail": exc.detail},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "loc": list(err.get("loc", ())),
                "msg": err.get("msg", ""),
                "type": err.get("type", ""),
            }
            for err in exc.errors()
        ]
        return JSONResponse({"detail": _first_problem(errors), "errors": errors}, status_code=422)

    @app.exception_handler(DatabaseUnavailable)
    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeout)
    async def _database_error(request: Request, exc: Exception) -> JSONResponse:
        return database_error_response(exc, request.method, request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _internal_error(request.method, request.url.path, exc)


def error_response(exc: Exception, method: str, path: str) -> JSONResponse:
    """What the handlers above answer for `exc`, for routes served outside FastAPI."""
    if isinstance(exc, ApiError):
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )
    if isinstance(exc, DatabaseUnavailable | DBAPIError | PoolTimeout):
        return database_error_response(exc, method, path)
    return _internal_error(method, path, exc)


def database_error_response(exc: Exception, method: str, path: str) -> JSONResponse:
    if isinstance(exc, PoolTimeout):
        logger.warning("%s on %s %s: %s", DATABASE_BUSY, method, path, exc)
        return JSONResponse(
            {"detail": DATABASE_BUSY},
            status_code=503,
            headers={"Retry-After": DATABASE_BUSY_RETRY_AFTER},
        )
    if not is_database_unavailable(exc):
        return _internal_error(method, path, exc)
    # A client may retry this: the database is down or restarting, nothing here is broken.
    logger.warning("%s on %s %s: %s", DATABASE_UNAVAILABLE, method, path, exc)
    return JSONResponse(
        {"detail": DATABASE_UNAVAILABLE},
        status_code=503,
        headers={"Retry-After": DATABASE_RETRY_AFTER},
    )


def _first_problem(errors: list[dict[str, object]]) -> str:
    """`invalid request: <where>: <why>` for the first refused field."""
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"])  # type: ignore[union-attr]
    return f"invalid request: {where}: {first['msg']}"


def is_database_unavailable(exc: BaseException) -> bool:
    """True when `exc` means PostgreSQL could not be reached, not that a query was wrong."""
    if isinstance(exc, DatabaseUnavailable):
        return True
    # A connection cut mid-request (restart, failover): SQLAlchemy has invalidated it.
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def _internal_error(method: str, path: str, exc: Exception) -> JSONResponse:
    logger.error("unhandled error on %s %s", method, path, exc_info=exc)
    return JSONResponse({"detail": "internal server error"}, status_code=500)

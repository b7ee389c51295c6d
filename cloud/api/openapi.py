"""Error statuses for routes that do not list their own, so the OpenAPI document stays true.

Every `/v1` route sits behind the body limit (413), request validation (422) and the database
(503), and almost all behind authentication and roles (401, 403), tenancy (404), state checks
(409) and rate limits (429). A route that declares `responses(...)` itself keeps exactly its own
list (plus our 422 body); one that does not gets this whole set.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.routing import APIRoute

from cloud.api.schemas.errors import responses

DEFAULT_ERROR_STATUSES = (401, 403, 404, 409, 413, 422, 429, 503)


def document_default_errors(router: APIRouter) -> APIRouter:
    """Give every `/v1` route of `router` without declared error responses the default set.

    Applied to each router before the app includes it (the app keeps included routers whole).
    """
    defaults = responses(*DEFAULT_ERROR_STATUSES)
    for route in router.routes:
        if not isinstance(route, APIRoute) or not route.path.startswith("/v1"):
            continue
        declared = {int(status) for status in route.responses if str(status).isdigit()}
        if not any(status >= 400 for status in declared):
            route.responses = {**defaults, **route.responses}
        elif 422 not in declared:  # FastAPI's own 422 schema is not the body we send
            route.responses = {**route.responses, **responses(422)}
    return router

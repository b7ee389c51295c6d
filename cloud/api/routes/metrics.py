"""GET /metrics: Prometheus text, for a bearer token or (with none configured) loopback only."""

from __future__ import annotations

import hmac
import ipaddress

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from cloud.api.deps import BearerToken, SettingsDep
from cloud.api.schemas.errors import responses
from cloud.core.errors import ApiError
from cloud.metrics.scrape import render

router = APIRouter(tags=["operations"])


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
        **responses(401, 403, 503, s401="Metrics token missing or wrong", s403="Not loopback"),
    },
    # The token is optional: with no VISANT_METRICS_TOKEN, loopback clients need none.
    openapi_extra={"security": [{}, {"HTTPBearer": []}]},
)
async def metrics(request: Request, settings: SettingsDep, token: BearerToken) -> Response:
    """This instance's metrics in the Prometheus text format."""
    expected = settings.metrics_token
    if expected:
        if not token or not hmac.compare_digest(token.encode(), expected.encode()):
            raise ApiError(401, "metrics token missing or wrong", {"WWW-Authenticate": "Bearer"})
    elif not _is_loopback(request.client.host if request.client else None):
        raise ApiError(403, "metrics are served to loopback clients unless a token is set")
    state = request.app.state
    body = await render(
        state.engine, state.session_factory, lambda: len(state.hub.connected_here())
    )
    return Response(body, media_type=CONTENT_TYPE_LATEST)

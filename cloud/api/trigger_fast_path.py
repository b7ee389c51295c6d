"""The manual trigger served in front of FastAPI (see cloud/api/fast_paths.py).

Only a request that parses is served here: a well-formed device id, a bearer token, and an
empty or JSON body that is a valid `ManualTriggerRequest` within the JSON body limit. Anything
else goes to the FastAPI route with its body replayed, so the refusals of parsing (404 bad
id, 401 no token, 413, 422 and their JSON) are exactly the route's. From there on the work is
the route's own (`manual_trigger`), with no session at all when the token cache knows the
caller, and its refusals are answered as the app's handlers answer them.
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import ValidationError
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from cloud.api.raw_request import answer, bearer_token, first_headers, header_text
from cloud.api.routes.triggers import manual_trigger
from cloud.api.schemas.triggers import ManualTriggerRequest
from cloud.auth.service import authenticate_actor, cached_actor, require_role
from cloud.core.ids import DEVICE_ID
from cloud.models import UserRole

ROUTE = "/v1/devices/{device_id}/trigger"  # the metric label the FastAPI route would give


async def serve_trigger(
    app: FastAPI, device_id: str, scope: Scope, receive: Receive, send: Send
) -> None:
    state = app.state
    headers = first_headers(scope)
    limit = state.settings.max_json_body_bytes
    body, more_body = await _read_body(receive, headers, limit)
    if body is None:  # the client left while sending
        return
    token = bearer_token(headers.get(b"authorization"))
    request = None
    if not more_body and len(body) <= limit and token is not None and DEVICE_ID.match(device_id):
        request = _parsed(body, headers.get(b"content-type"))
    if request is None:
        await app(scope, _replay(body, more_body, receive), send)
        return
    await _serve(app, device_id, token, request, scope, receive, send)


async def _serve(
    app: FastAPI,
    device_id: str,
    token: str,
    request: ManualTriggerRequest,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    state = app.state

    async def respond() -> Response:
        user = cached_actor(state.settings, token, state.token_cache)
        if user is None:  # a session only to look the token up
            async with state.session_factory() as session:
                user = await authenticate_actor(session, state.settings, token, state.token_cache)
        require_role(user, UserRole.OPERATOR)
        return await manual_trigger(
            state.trigger_batcher, state.settings, state.hub, user, device_id, request
        )

    await answer(respond, ROUTE, scope, receive, send)


async def _read_body(
    receive: Receive, headers: dict[bytes, bytes], limit: int
) -> tuple[bytes | None, bool]:
    """(what was read, whether more body follows). Reading stops once past `limit` bytes, and
    does not start when Content-Length already says so. (None, False): the client left."""
    declared = header_text(headers.get(b"content-length"))
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return b"", True
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None, False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        more_body = bool(message.get("more_body", False))
        if not more_body or size > limit:
            return b"".join(chunks), more_body


def _replay(body: bytes, more_body: bool, receive: Receive) -> Receive:
    """`receive` with what was already read given back first."""
    replayed = False

    async def replaying_receive() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": more_body}

    return replaying_receive


def _parsed(body: bytes, content_type: bytes | None) -> ManualTriggerRequest | None:
    """The body as FastAPI would read it when that succeeds (empty: the defaults), else None."""
    if not body:
        return ManualTriggerRequest()
    media_type = (header_text(content_type) or "application/json").split(";")[0]
    if media_type.strip().lower() != "application/json":
        return None
    try:
        return ManualTriggerRequest.model_validate_json(body)
    except ValidationError:
        return None

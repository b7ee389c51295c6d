"""Opening a device's stream: authenticate, register, read the backlog, claim presence."""

from __future__ import annotations

import math

from fastapi import FastAPI
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy.exc import DBAPIError, IntegrityError

from cloud.api.deps import authenticate_device
from cloud.errors import ApiError
from cloud.hub import DISCONNECTED_REASON, CommandHub, LocalStream
from cloud.services.delivery import backlog_envelopes, claim_presence

SHUTDOWN_RETRY_AFTER = "5"  # seconds


async def open_device_stream(
    app: FastAPI, device_id: str, credentials: HTTPAuthorizationCredentials | None
) -> tuple[CommandHub, LocalStream]:
    """A registered stream holding the device's backlog; no database connection stays open.

    The stream is registered before the backlog is read, so a command committed meanwhile is
    either in the backlog or held live (then deduplicated); none falls in between.
    """
    hub: CommandHub = app.state.hub
    if not hub.accepting:
        raise ApiError(503, "server shutting down", {"Retry-After": SHUTDOWN_RETRY_AFTER})
    async with app.state.session_factory() as session:
        device = await authenticate_device(device_id, credentials, session, app.state.settings)
        wait = hub.allow_open(device.device_id)
        if wait is not None:
            raise ApiError(
                429, "too many streams opened by this device", {"Retry-After": str(math.ceil(wait))}
            )
        stream = hub.open_stream(device.device_id, device.key_hash)
        try:
            backlog = await backlog_envelopes(session, device)
            stream.claimed_at = await claim_presence(
                session, device.device_id, hub.instance_id, stream.stream_id
            )
            await session.commit()
        except IntegrityError as exc:
            _abandon(hub, stream)
            raise ApiError(
                503, "server instance re-registering", {"Retry-After": SHUTDOWN_RETRY_AFTER}
            ) from exc
        except (DBAPIError, OSError, TimeoutError) as exc:
            _abandon(hub, stream)
            raise ApiError(
                503, "database unavailable", {"Retry-After": SHUTDOWN_RETRY_AFTER}
            ) from exc
        except BaseException:
            _abandon(hub, stream)
            raise
    hub.finish_replay(stream, backlog)
    return hub, stream


def _abandon(hub: CommandHub, stream: LocalStream) -> None:
    stream.mailbox.close(DISCONNECTED_REASON)
    hub.end_stream(stream)

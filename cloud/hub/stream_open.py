"""Opening a device's stream: authenticate, register, read the backlog, claim presence."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloud.auth.device_admission import authenticate_and_count
from cloud.core.config import Settings
from cloud.core.errors import ApiError
from cloud.hub import close_reasons
from cloud.hub.delivery import backlog_envelopes
from cloud.hub.hub import CommandHub, LocalStream
from cloud.hub.presence import claim_presence
from cloud.limits.counters import Limit

SHUTDOWN_RETRY_AFTER = "5"  # seconds


async def open_device_stream(
    hub: CommandHub,
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    device_id: str,
    key: str | None,
) -> LocalStream:
    """A registered stream holding the device's backlog; no database connection stays open.

    The stream is registered before the backlog is read, so a command committed meanwhile is
    either in the backlog or held live (then deduplicated); none falls in between. Three
    statements per open: authenticate and count the open, claim presence, read the backlog.
    """
    if not hub.accepting:
        raise ApiError(503, "server shutting down", {"Retry-After": SHUTDOWN_RETRY_AFTER})
    async with session_factory() as session:
        # Counted in PostgreSQL: a device hopping between instances gets one budget.
        opens = Limit("stream-opens", settings.stream_opens_per_device_per_minute, 60)
        device = await authenticate_and_count(
            session, settings, device_id, key, opens, "too many streams opened by this device"
        )
        stream = hub.open_stream(device.device_id, device.key_hash)
        try:
            # Claim first, then read: a command routed to the previous holder was committed
            # before the claim could take the presence row, so the backlog has it.
            stream.claimed_at = await claim_presence(
                session, device.device_id, hub.instance_id, stream.stream_id
            )
            backlog = await backlog_envelopes(session, device)
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
    return stream


def _abandon(hub: CommandHub, stream: LocalStream) -> None:
    stream.mailbox.close(close_reasons.DISCONNECTED)
    hub.end_stream(stream)

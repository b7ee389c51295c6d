"""TCP options on the listening socket, so a peer that vanished without FIN or RST is noticed.

A device that drops off Wi-Fi leaves its stream half-open: the server's writes (keepalive
comments every keepalive, commands) are never acknowledged, and without help TCP retransmits
for about 15 minutes (`tcp_retries2`) before it gives up. `TCP_USER_TIMEOUT` bounds how long
written data may stay unacknowledged before the kernel aborts the connection; the stream then
sees a disconnect and ends, and the device is offline. TCP keepalive covers a connection with
nothing to write (an upload whose sender vanished mid-body). Linux copies these options from
the listening socket to every accepted one, so setting them once covers every connection.
"""

from __future__ import annotations

import logging
import math
import socket
from dataclasses import dataclass

from cloud.core.config import Settings

logger = logging.getLogger(__name__)

# As many keepalives as the presence window (docs/architecture.md): a stream whose writes stay
# unacknowledged that long is dropped, as a dead instance's devices are offline after it.
USER_TIMEOUT_KEEPALIVES = 2
KEEPALIVE_PROBES = 3  # unanswered probes of an idle connection within the user timeout


@dataclass(frozen=True)
class TcpOptions:
    """Half-open detection: abort after ``user_timeout`` s of unacknowledged data; an idle
    connection is probed after ``idle`` s, then every ``interval`` s."""

    user_timeout: float
    idle: int
    interval: int

    @classmethod
    def from_settings(cls, settings: Settings) -> TcpOptions:
        timeout = settings.tcp_user_timeout_seconds or (
            settings.keepalive_seconds * USER_TIMEOUT_KEEPALIVES
        )
        return cls(
            user_timeout=timeout,
            idle=max(1, math.ceil(settings.keepalive_seconds)),
            interval=max(1, math.ceil(timeout / KEEPALIVE_PROBES)),
        )

    def apply(self, sock: socket.socket) -> None:
        """Set the options on ``sock``; options this platform lacks are skipped."""
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (
            ("TCP_KEEPIDLE", self.idle),
            ("TCP_KEEPINTVL", self.interval),
            ("TCP_KEEPCNT", KEEPALIVE_PROBES),
            ("TCP_USER_TIMEOUT", max(1, round(self.user_timeout * 1000))),
        ):
            option = getattr(socket, name, None)
            if option is None:
                logger.debug("%s not available here; half-open links are noticed later", name)
                continue
            sock.setsockopt(socket.IPPROTO_TCP, option, value)

"""Why the hub ends a device stream: the text a client reads in the stream's `shutdown` event.

Agents log these and decide from them (a rotated key or a suspension means "stop retrying
with this key"); keep them stable.
"""

from __future__ import annotations

from cloud.models import DeviceStatus

SHUTDOWN = "server shutting down"
REPLACED = "replaced by a newer stream"
KEY_ROTATED = "device key rotated"
DELETED = "device deleted"
# Ended by the client or for its own good: nothing is written to the socket.
DISCONNECTED = "client disconnected"
TOO_SLOW = "client too slow"
SILENT = frozenset({DISCONNECTED, TOO_SLOW})


def device_not_active(status: DeviceStatus | str) -> str:
    """The reason for a device that is no longer allowed to stream (suspended, inactive)."""
    value = status.value if isinstance(status, DeviceStatus) else status
    return f"device is {value}"

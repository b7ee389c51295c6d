"""The device keys this instance admitted moments ago: the uploads whose snapshot is written
while their admission runs.

Not an authentication cache: every upload is still admitted by the database (key, device
status, rate, earlier try, trigger), and its row stored only then. A remembered key only lets
the snapshot's write start before that answer instead of after it, which takes the
admission's round trip (~6 ms at 32 uploads in flight) off the upload's path. An upload the
admission then refuses has its file deleted. An unknown or refused key writes nothing before
its admission, so a stranger's upload never reaches the disk.
"""

from __future__ import annotations

import time
from collections import OrderedDict

REMEMBER_SECONDS = 60.0  # a device uploading on any schedule tighter than this writes early
CAPACITY = 10_000  # devices remembered; the least recently admitted goes first


class RecentlyAdmitted:
    """device id -> the key hash admitted for it, for `seconds` after its last admission."""

    def __init__(self, seconds: float = REMEMBER_SECONDS, capacity: int = CAPACITY) -> None:
        self._seconds = seconds
        self._capacity = capacity
        self._keys: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def holds(self, device_id: str, key_hash: str) -> bool:
        remembered = self._keys.get(device_id)
        return (
            remembered is not None
            and remembered[0] == key_hash
            and remembered[1] > time.monotonic()
        )

    def remember(self, device_id: str, key_hash: str) -> None:
        self._keys[device_id] = (key_hash, time.monotonic() + self._seconds)
        self._keys.move_to_end(device_id)
        if len(self._keys) > self._capacity:
            self._keys.popitem(last=False)

    def forget(self, device_id: str) -> None:
        self._keys.pop(device_id, None)

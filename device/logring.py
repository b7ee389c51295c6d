"""Recent log lines kept in memory, for the diagnostics report (no log file on the box needed)."""

from __future__ import annotations

import collections
import logging
import threading

RING_LINES = 200  # lines kept; the diagnostics report sends them all
MAX_LINE_CHARS = 500  # a traceback line longer than this is cut


class RingLogHandler(logging.Handler):
    """Keeps the last ``capacity`` formatted records; safe from any thread."""

    def __init__(self, capacity: int = RING_LINES) -> None:
        super().__init__()
        self._lines: collections.deque[str] = collections.deque(maxlen=capacity)
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)[:MAX_LINE_CHARS]
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            return
        with self._guard:
            self._lines.append(line)

    def lines(self) -> list[str]:
        with self._guard:
            return list(self._lines)


_ring: RingLogHandler | None = None


def install(level: int = logging.INFO) -> RingLogHandler:
    """Attach the ring to the root logger once; later calls return the same ring."""
    global _ring
    if _ring is None:
        _ring = RingLogHandler()
        _ring.setLevel(level)
        _ring.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(_ring)
    return _ring


def recent_lines() -> list[str]:
    return _ring.lines() if _ring is not None else []

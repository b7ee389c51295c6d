"""On-disk spool of captures waiting for upload: survives restarts, bounded in size.

Layout: ``<spool>/<stamp>-<tag>.jpg`` plus its ``<stamp>-<tag>.json`` metadata. The image is
written first and the JSON last, each atomically, so an entry exists exactly when its JSON
does; an image without JSON is debris from a crash and is removed at start. Names sort in
capture order, so the oldest entry is the first name.

Full policy: when an entry would take the spool past its byte limit, the oldest entries are
dropped (with a warning naming each) until it fits. In a long outage the newest captures are
the useful ones, and triggered captures that old have usually expired server-side anyway.
Refused captures (a final 4xx) move to ``<spool>/rejected/`` with the reason, newest
``MAX_REJECTED`` kept, for an operator to inspect.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device.files import read_json, write_atomic, write_json_atomic

logger = logging.getLogger(__name__)

REJECTED_DIR = "rejected"
MAX_REJECTED = 200  # entries kept in rejected/ for inspection
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class SpoolEntry:
    """One spooled capture: an image file and its metadata file."""

    name: str
    image_path: Path
    meta_path: Path

    def size(self) -> int:
        total = 0
        for path in (self.image_path, self.meta_path):
            try:
                total += path.stat().st_size
            except OSError:
                pass
        return total


class Spool:
    """A directory of captures not yet accepted by the cloud, oldest first."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._rejected = directory / REJECTED_DIR
        self._rejected.mkdir(parents=True, exist_ok=True)
        self._counter = itertools.count()
        # The capture path and the background sender both touch the spool from threads.
        self._lock = threading.Lock()
        self._remove_debris()

    def new_entry(self, tag: str, suffix: str = ".jpg") -> SpoolEntry:
        """Name a new entry (sorting after every existing one); nothing is written yet."""
        stamp = f"{time.time_ns():020d}-{next(self._counter) % 10000:04d}"
        name = f"{stamp}-{_UNSAFE.sub('_', tag)[:80]}"
        return SpoolEntry(name, self.directory / f"{name}{suffix}", self.directory / f"{name}.json")

    def write(self, entry: SpoolEntry, image: bytes, metadata: dict[str, Any]) -> None:
        """Store one capture durably (dropping the oldest entries if the spool is full)."""
        document = json.dumps({"image": entry.image_path.name, **metadata}).encode()
        with self._lock:
            self._make_room(len(image) + len(document))
            write_atomic(entry.image_path, image)
            write_atomic(entry.meta_path, document)

    def put(self, image: bytes, metadata: dict[str, Any], tag: str) -> SpoolEntry:
        entry = self.new_entry(tag)
        self.write(entry, image, metadata)
        return entry

    def holds(self, tag: str) -> bool:
        """Whether a complete entry was spooled under `tag` (a trigger id)."""
        suffix = f"-{_UNSAFE.sub('_', tag)[:80]}"
        with self._lock:
            return any(entry.name.endswith(suffix) for entry in self._entries())

    def entries(self) -> list[SpoolEntry]:
        """Every complete entry, oldest first."""
        with self._lock:
            return self._entries()

    def load(self, entry: SpoolEntry) -> tuple[bytes, dict[str, Any]] | None:
        """Return (image bytes, metadata), or None when the entry is gone or damaged."""
        document = read_json(entry.meta_path)
        try:
            image = entry.image_path.read_bytes()
        except OSError:
            image = None
        if not isinstance(document, dict) or image is None:
            return None
        document.pop("image", None)
        return image, document

    def remove(self, entry: SpoolEntry) -> None:
        with self._lock:
            entry.image_path.unlink(missing_ok=True)
            entry.meta_path.unlink(missing_ok=True)

    def reject(self, entry: SpoolEntry, reason: str) -> None:
        """Move an entry the cloud refused for good into rejected/, noting why."""
        with self._lock:
            document = read_json(entry.meta_path) or {}
            document["rejected_reason"] = reason
            if entry.image_path.exists():
                shutil.move(str(entry.image_path), self._rejected / entry.image_path.name)
            write_json_atomic(self._rejected / entry.meta_path.name, document)
            entry.meta_path.unlink(missing_ok=True)
            self._trim_rejected()

    def total_bytes(self) -> int:
        with self._lock:
            return sum(entry.size() for entry in self._entries())

    def _entries(self) -> list[SpoolEntry]:
        result = []
        for meta_path in sorted(self.directory.glob("*.json")):
            document = read_json(meta_path)
            image_name = document.get("image") if isinstance(document, dict) else None
            if not image_name:
                continue
            result.append(SpoolEntry(meta_path.stem, self.directory / image_name, meta_path))
        return result

    def _make_room(self, incoming: int) -> None:
        entries = self._entries()
        total = sum(entry.size() for entry in entries)
        for entry in entries:
            if total + incoming <= self.max_bytes:
                break
            logger.warning(
                "spool full (%d of %d bytes): dropping oldest capture %s",
                total,
                self.max_bytes,
                entry.name,
            )
            total -= entry.size()
            entry.image_path.unlink(missing_ok=True)
            entry.meta_path.unlink(missing_ok=True)

    def _trim_rejected(self) -> None:
        metas = sorted(self._rejected.glob("*.json"))
        for meta_path in metas[: max(0, len(metas) - MAX_REJECTED)]:
            for path in self._rejected.glob(f"{meta_path.stem}.*"):
                path.unlink(missing_ok=True)

    def _remove_debris(self) -> None:
        for tmp in self.directory.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
        referenced = {entry.image_path.name for entry in self._entries()}
        for path in self.directory.iterdir():
            if path.is_file() and path.suffix != ".json" and path.name not in referenced:
                logger.warning("removing incomplete spool file %s", path.name)
                path.unlink(missing_ok=True)

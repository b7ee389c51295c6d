"""Agent state that must survive restarts: executed command ids and the applied config."""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any

from device.files import read_json, write_json_atomic

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"
MAX_EXECUTED_IDS = 1000  # far more than the open triggers a device can have at once


class AgentState:
    """Executed command ids (bounded, oldest forgotten first) and the last applied config.

    Every change is written atomically before the method returns, so a command recorded
    here is never executed again, even after a power cut.
    """

    def __init__(self, state_dir: Path, max_executed: int = MAX_EXECUTED_IDS) -> None:
        self._path = state_dir / STATE_FILE
        self._max_executed = max_executed
        self._executed: OrderedDict[str, None] = OrderedDict()
        self.config: dict[str, Any] = {}
        self.config_version = 0
        state_dir.mkdir(parents=True, exist_ok=True)
        self._load()

    def was_executed(self, command_id: str) -> bool:
        return command_id in self._executed

    def mark_executed(self, command_id: str) -> None:
        self._executed[command_id] = None
        self._executed.move_to_end(command_id)
        while len(self._executed) > self._max_executed:
            self._executed.popitem(last=False)
        self._save()

    def set_config(self, version: int, config: dict[str, Any]) -> None:
        self.config_version = version
        self.config = config
        self._save()

    def _load(self) -> None:
        document = read_json(self._path)
        if document is None:
            if self._path.exists():
                logger.warning("state file %s unreadable; starting empty", self._path)
            return
        for command_id in document.get("executed", [])[-self._max_executed :]:
            self._executed[str(command_id)] = None
        config = document.get("config")
        self.config = config if isinstance(config, dict) else {}
        self.config_version = int(document.get("config_version") or 0)

    def _save(self) -> None:
        write_json_atomic(
            self._path,
            {
                "executed": list(self._executed),
                "config": self.config,
                "config_version": self.config_version,
            },
        )

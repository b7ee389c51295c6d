"""Every identifier the service issues or accepts: its pattern and, where we mint it, its maker.

Ids are checked against these patterns before they reach SQL, a file path or a NOTIFY payload.
"""

from __future__ import annotations

import re
import secrets

DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
TRIGGER_ID_PATTERN = r"^trg_[0-9a-f]{32}$"
RECORD_ID_PATTERN = r"^cap_[0-9a-f]{32}$"
CONFIG_COMMAND_ID_PATTERN = r"^cfg_[0-9]{1,18}$"
DEVICE_COMMAND_ID_PATTERN = r"^cmd_[0-9a-f]{32}$"  # ping, diagnostics, restart

DEVICE_ID = re.compile(DEVICE_ID_PATTERN)
TRIGGER_ID = re.compile(TRIGGER_ID_PATTERN)
RECORD_ID = re.compile(RECORD_ID_PATTERN)
DEVICE_COMMAND_ID = re.compile(DEVICE_COMMAND_ID_PATTERN)
# A command id is a capture's trigger id, a config command's `cfg_<version>` or a device
# command's `cmd_<hex>`.
COMMAND_ID = re.compile(
    rf"{TRIGGER_ID_PATTERN}|{CONFIG_COMMAND_ID_PATTERN}|{DEVICE_COMMAND_ID_PATTERN}"
)


def new_trigger_id() -> str:
    return "trg_" + secrets.token_hex(16)


def new_record_id() -> str:
    return "cap_" + secrets.token_hex(16)


def new_device_command_id() -> str:
    return "cmd_" + secrets.token_hex(16)


def config_command_id(version: int) -> str:
    return f"cfg_{version}"


# Alerts and notifications. A notification id is also the webhook-id header (Standard
# Webhooks' `msg_` convention), stable across retries.
ALERT_ID_PATTERN = r"^alr_[0-9a-f]{32}$"
CHANNEL_ID_PATTERN = r"^chn_[0-9a-f]{32}$"
NOTIFICATION_ID_PATTERN = r"^msg_[0-9a-f]{32}$"
ALERT_ID = re.compile(ALERT_ID_PATTERN)
CHANNEL_ID = re.compile(CHANNEL_ID_PATTERN)
NOTIFICATION_ID = re.compile(NOTIFICATION_ID_PATTERN)


def new_alert_id() -> str:
    return "alr_" + secrets.token_hex(16)


def new_channel_id() -> str:
    return "chn_" + secrets.token_hex(16)


def new_notification_id() -> str:
    return "msg_" + secrets.token_hex(16)

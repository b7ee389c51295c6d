"""Pydantic building blocks shared by every request body: strictness and validated ids."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from cloud.core.ids import DEVICE_ID_PATTERN, TRIGGER_ID_PATTERN

DeviceId = Annotated[str, StringConstraints(pattern=DEVICE_ID_PATTERN)]
TriggerId = Annotated[str, StringConstraints(pattern=TRIGGER_ID_PATTERN)]


class StrictBody(BaseModel):
    """Request bodies refuse unknown fields (422) instead of silently ignoring them."""

    model_config = ConfigDict(extra="forbid")

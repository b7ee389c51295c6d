"""Pydantic building blocks shared by every request body: strictness, storable values, ids.

The one place that keeps input PostgreSQL would refuse (a 500) out of the service:

- `StrictBody` walks every value of a validated body, free-form dicts included, and refuses
  NUL characters and lone surrogates in any string (text and jsonb refuse both) and
  non-finite floats (jsonb has no NaN or Infinity). Nested `StrictBody` models check
  themselves, so each value is walked once.
- `UtcDateTime` is an aware UTC datetime: naive means UTC, and a moment that cannot be moved
  to UTC (`0001-01-01T00:00:00+05:00` is before year 1 in UTC) is a 422, not an OverflowError.
- `Int32` / `Int64` are the ranges of PostgreSQL's integer and bigint columns.
- `Text` is a plain string with the same refusal, for query and path parameters.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from cloud.core.ids import DEVICE_ID_PATTERN, TRIGGER_ID_PATTERN

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
NUL_MESSAGE = "must not contain NUL characters"
SURROGATE_MESSAGE = "must not contain unpaired surrogate characters"


def text_problem(value: str) -> str | None:
    """Why PostgreSQL would refuse this string, or None when it is storable."""
    if "\x00" in value:
        return NUL_MESSAGE
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return SURROGATE_MESSAGE
    return None


def storable_text(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def utc_datetime(moment: datetime) -> datetime:
    """The moment in UTC (naive taken as UTC); ValueError when UTC cannot express it."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("date is outside the supported range (years 1 to 9999 in UTC)") from exc


Text = Annotated[str, AfterValidator(storable_text)]
UtcDateTime = Annotated[datetime, AfterValidator(utc_datetime)]
# For filters, where a naive time is more likely a mistake than UTC: the zone is required.
AwareUtcDateTime = Annotated[AwareDatetime, AfterValidator(utc_datetime)]
Int32 = Annotated[int, Field(ge=-INT32_MAX - 1, le=INT32_MAX)]
Int64 = Annotated[int, Field(ge=-INT64_MAX - 1, le=INT64_MAX)]
DeviceId = Annotated[str, StringConstraints(pattern=DEVICE_ID_PATTERN)]
TriggerId = Annotated[str, StringConstraints(pattern=TRIGGER_ID_PATTERN)]


def _problems(value: Any, where: str) -> Iterator[str]:
    """`where: why` for each unstorable value under `value` (models excluded: they check)."""
    if isinstance(value, BaseModel):
        return
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            yield f"{where}: {problem}"
    elif isinstance(value, float):
        if not math.isfinite(value):
            yield f"{where}: must be a finite number"
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _problems(key, f"{where} (key)")
            yield from _problems(item, f"{where}.{key}")
    elif isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(value):
            yield from _problems(item, f"{where}.{index}")


class StrictBody(BaseModel):
    """Request bodies refuse unknown fields and values PostgreSQL cannot store (422)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _storable(self) -> StrictBody:
        for name in type(self).model_fields:
            for problem in _problems(getattr(self, name), name):
                raise ValueError(problem)
        return self

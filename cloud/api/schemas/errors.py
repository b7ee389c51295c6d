"""The error bodies every route answers with, for the OpenAPI document.

Every refusal is `{"detail": str}`; a request the schema refused (422) also lists the fields
in `errors`. `responses(...)` gives a route the statuses it really answers, so a generated
client knows each one and its body.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    detail: str = Field(description="Why the request was refused, for people and logs.")


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorBody(ErrorBody):
    errors: list[FieldError] = Field(
        default_factory=list,
        description="Each refused field (absent when the check was not per field).",
    )


DESCRIPTIONS = {
    400: "Malformed request (header or Last-Event-ID)",
    401: "Missing, malformed, expired or revoked credentials",
    403: "The caller's role does not allow this, or the device is suspended or inactive",
    404: "No such resource in the caller's org (another org's is 404 too)",
    409: "Conflicts with the resource's current state",
    413: "Request body over the route's limit, or image over its byte or pixel limit",
    415: "Body is not one of the accepted media types",
    422: "A field, parameter or document failed validation (the detail names it)",
    429: "Rate limit reached; Retry-After says when to retry",
    503: "Database unavailable or server shutting down; Retry-After says when to retry",
}


def responses(*statuses: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses (422 with its field list, others plain).

    `described` overrides a description: `responses(404, s409="trigger already terminal")`.
    """
    result: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        model = ValidationErrorBody if status == 422 else ErrorBody
        description = described.get(f"s{status}", DESCRIPTIONS[status])
        result[status] = {"model": model, "description": description}
    return result

"""The device page's editors: schedule (a form) and rules with zones (the page's JSON fetch).

Both go through the API's own validation (the config document model, then the schedule
limits) and the same device-config change, so the device gets the new config at once.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import ValidationError

from cloud.accounts.audit import AuditAction, record_audit
from cloud.console.device_view import org_device
from cloud.console.routes.device import device_page
from cloud.console.web import ConsoleRoute, OperatorDep, SessionDep
from cloud.core.errors import ApiError
from cloud.devices.config_document import MAX_ACTIVE_HOURS, DeviceConfig
from cloud.devices.service import change_device
from cloud.events.notify import EventKind, emit
from cloud.models import Device, User

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
UNITS = {"s": 1, "min": 60, "h": 3600, "day": 86400}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_RULES_BODY = 64 * 1024


def config_problem(exc: ValidationError) -> str:
    """The first refused field of a config, as a sentence for the page."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def schedule_from_form(form: Any) -> dict[str, Any]:
    """The `trigger` section the schedule form describes (validated by the caller)."""
    mode = form.get("mode", "off")
    trigger: dict[str, Any] = {
        "enabled": mode in ("interval", "cron"),
        "timezone": (form.get("timezone") or "UTC").strip(),
    }
    if mode == "interval" or (mode == "off" and form.get("interval_value")):
        value = (form.get("interval_value") or "").strip()
        unit = UNITS.get(form.get("interval_unit", "s"), 1)
        if not value.isdigit():
            raise ApiError(422, "interval: enter a whole number")
        trigger["interval_seconds"] = int(value) * unit
    elif mode == "cron":
        trigger["cron"] = (form.get("cron") or "").strip()
    windows = []
    for index in range(MAX_ACTIVE_HOURS):
        start = (form.get(f"ah_start_{index}") or "").strip()
        end = (form.get(f"ah_end_{index}") or "").strip()
        if not start and not end:
            continue
        days = [day for day in form.getlist(f"ah_days_{index}") if day in WEEKDAYS]
        windows.append({"days": days or list(WEEKDAYS), "start": start, "end": end})
    if windows:
        trigger["active_hours"] = windows
    return trigger


async def apply_config(
    request: Request, session: Any, user: User, device: Device, section: str, value: Any
) -> None:
    """Validate the config with `section` replaced and change the device like the API does."""
    document = {**(device.config or {}), section: value}
    try:
        config = DeviceConfig.model_validate(document)
    except ValidationError as exc:
        raise ApiError(422, config_problem(exc)) from exc
    before = device.config_version
    await change_device(
        session, request.app.state.settings, device, friendly_name=None, status=None, config=config
    )
    if device.config_version != before:
        details = {"version": device.config_version, "via": "console"}
        await record_audit(session, user, AuditAction.CONFIG_PUSHED, device.device_id, details)
        await emit(session, user.org_id, EventKind.DEVICE, device.device_id, changed="config")
    await session.commit()


@router.post("/devices/{device_id}/schedule")
async def save_schedule(
    request: Request, device_id: str, viewer: OperatorDep, session: SessionDep
) -> Response:
    form = await request.form()
    device = await org_device(session, viewer.user, device_id)
    try:
        trigger = schedule_from_form(form)
        await apply_config(request, session, viewer.user, device, "trigger", trigger)
    except ApiError as exc:
        if exc.status_code != 422:
            raise
        # Refused before anything changed (validation runs first): the page shows the form
        # again with the values as typed.
        values = {key: form.get(key) for key in form}
        values["days"] = {key: form.getlist(key) for key in form if key.startswith("ah_days_")}
        return await device_page(
            request,
            viewer,
            session,
            device_id,
            problem=exc.detail,
            status_code=422,
            schedule_form=values,
        )
    return RedirectResponse(f"/devices/{device_id}?saved=schedule", status_code=303)


@router.post("/console/devices/{device_id}/rules")
async def save_rules(
    request: Request, device_id: str, viewer: OperatorDep, session: SessionDep
) -> Response:
    """`{"rules": [{name, labels, min_confidence, zone?}]}`: the device's evaluation rules."""
    try:
        body = await request.json()
    except ValueError as exc:
        raise ApiError(422, "the rules could not be read") from exc
    if not isinstance(body, dict) or not isinstance(body.get("rules"), list):
        raise ApiError(422, "rules: expected a list")
    device = await org_device(session, viewer.user, device_id)
    await apply_config(
        request, session, viewer.user, device, "evaluation", {"rules": body["rules"]}
    )
    rules = (device.config.get("evaluation") or {}).get("rules", [])
    return JSONResponse({"rules": rules, "config_version": device.config_version})

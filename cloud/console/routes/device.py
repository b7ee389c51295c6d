"""The device page: live status, trigger timeline, gallery, capture now, suspend, key, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from cloud.accounts.audit import AuditAction, record_audit
from cloud.console.device_view import device_view, org_device
from cloud.console.web import AdminDep, ConsoleRoute, OperatorDep, SessionDep, ViewerDep, render
from cloud.devices.lifecycle import delete_device, delete_snapshots
from cloud.devices.service import change_device, rotate_device_key
from cloud.events.notify import EventKind, emit
from cloud.models import DeviceStatus
from cloud.triggers.manual import request_manual_trigger

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
NOTICES = {
    "schedule": "Schedule saved; the device gets it at once.",
    "suspended": "Device suspended: its stream is closed and no captures are scheduled.",
    "resumed": "Device resumed.",
}
CONSOLE_LABEL = "console"


async def device_page(
    request: Request,
    viewer: ViewerDep,
    session: SessionDep,
    device_id: str,
    *,
    problem: str | None = None,
    status_code: int = 200,
    schedule_form: dict[str, object] | None = None,
) -> Response:
    settings = request.app.state.settings
    view = await device_view(session, viewer.user, device_id, settings.keepalive_seconds)
    context = {
        "viewer": viewer,
        "title": view.device.friendly_name or view.device.device_id,
        "nav": "fleet",
        "view": view,
        "d": view.device,
        "live_device": view.device.device_id,
        "notice": NOTICES.get(request.query_params.get("saved", "")),
        "problem": problem,
        "schedule": schedule_form,
    }
    return render(request, "device.html", context, status_code)


@router.get("/devices/{device_id}")
async def device(
    request: Request, device_id: str, viewer: ViewerDep, session: SessionDep
) -> Response:
    return await device_page(request, viewer, session, device_id)


@router.get("/console/devices/{device_id}/panels")
async def device_panels(
    request: Request, device_id: str, viewer: ViewerDep, session: SessionDep
) -> Response:
    """Status, timeline and gallery: the page swaps them in after an event of this device."""
    settings = request.app.state.settings
    view = await device_view(session, viewer.user, device_id, settings.keepalive_seconds)
    context = {"viewer": viewer, "view": view, "d": view.device}
    return render(request, "_device_panels.html", context)


@router.post("/console/devices/{device_id}/capture")
async def capture_now(request: Request, device_id: str, viewer: OperatorDep) -> Response:
    """A manual trigger through the API's own service (cap, org check, routing)."""
    hub = request.app.state.hub
    trigger = await request_manual_trigger(
        request.app.state.trigger_batcher,
        request.app.state.settings,
        viewer.user,
        device_id,
        CONSOLE_LABEL,
        None,
        via="console",
    )
    if trigger.instance_id is not None and trigger.instance_id == hub.instance_id:
        hub.hand_over(device_id, trigger.envelope)
    online = trigger.instance_id is not None
    return JSONResponse({"trigger_id": trigger.trigger_id, "online": online}, status_code=201)


@router.post("/devices/{device_id}/status")
async def set_status(
    request: Request,
    device_id: str,
    viewer: OperatorDep,
    session: SessionDep,
    action: Annotated[str, Form(pattern="^(suspend|resume)$")],
) -> Response:
    device = await org_device(session, viewer.user, device_id)
    target = DeviceStatus.SUSPENDED if action == "suspend" else DeviceStatus.ACTIVE
    before = device.status
    await change_device(
        session, request.app.state.settings, device, friendly_name=None, status=target, config=None
    )
    if before != target:
        details = {"from": before.value, "to": target.value, "via": "console"}
        await record_audit(
            session, viewer.user, AuditAction.DEVICE_STATUS_CHANGED, device_id, details
        )
        await emit(session, viewer.user.org_id, EventKind.DEVICE, device_id, changed="status")
    await session.commit()
    saved = "suspended" if target is DeviceStatus.SUSPENDED else "resumed"
    return RedirectResponse(f"/devices/{device_id}?saved={saved}", status_code=303)


@router.post("/devices/{device_id}/rotate-key")
async def rotate_key(
    request: Request, device_id: str, viewer: AdminDep, session: SessionDep
) -> Response:
    """A new key, shown on this response only (never stored in clear, never cached)."""
    device = await org_device(session, viewer.user, device_id)
    key = await rotate_device_key(session, request.app.state.settings, device)
    await record_audit(session, viewer.user, AuditAction.KEY_ROTATED, device_id, {"via": "console"})
    await emit(session, viewer.user.org_id, EventKind.DEVICE, device_id, changed="key")
    await session.commit()
    context = {"viewer": viewer, "title": "New device key", "nav": "fleet", "d": device, "key": key}
    return render(request, "key_once.html", context)


@router.post("/devices/{device_id}/delete")
async def remove(
    request: Request,
    device_id: str,
    viewer: OperatorDep,
    session: SessionDep,
    delete_captures: Annotated[bool, Form()] = False,
) -> Response:
    device = await org_device(session, viewer.user, device_id)
    settings = request.app.state.settings
    keys = await delete_device(session, settings.secret_key, device, delete_captures)
    details = {"delete_captures": delete_captures, "captures_deleted": len(keys), "via": "console"}
    await record_audit(session, viewer.user, AuditAction.DEVICE_DELETED, device_id, details)
    await emit(session, viewer.user.org_id, EventKind.DEVICE, device_id, changed="deleted")
    await session.commit()
    await delete_snapshots(request.app.state.snapshot_store, keys)
    return RedirectResponse("/fleet?deleted=1", status_code=303)

"""The channels page (admins): list, create (a webhook's secret shown once), edit routing,
enable, delete, send a test, recent deliveries; all through the alerts service."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from cloud.alerts.channels import (
    channel_deliveries,
    create_channel,
    delete_channel,
    list_channels,
    org_channel,
    send_test,
    update_channel,
)
from cloud.console.auth import Viewer
from cloud.console.channel_form import (
    KINDS,
    changed_channel,
    channel_values,
    form_values,
    last_outcomes,
    new_channel,
)
from cloud.console.refusal import rolled_back
from cloud.console.web import AdminDep, ConsoleRoute, SessionDep, ViewerDep, render
from cloud.core.errors import ApiError
from cloud.models import AlertChannel

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
DELIVERIES_SHOWN = 50
NOTICES = {
    "created": "Channel created.",
    "saved": "Channel saved.",
    "deleted": "Channel deleted.",
    "test": "Test notification queued; its delivery shows below within seconds.",
}
EMPTY_FORM: dict[str, Any] = {"kind": "apprise", "alert_kinds": list(KINDS), "enabled": True}


def admin_only(viewer: Viewer) -> None:
    if not viewer.is_admin:
        raise ApiError(403, "only admins can see and change notification channels")


async def channels_page(
    request: Request,
    viewer: Viewer,
    session: SessionDep,
    *,
    form: dict[str, Any] | None = None,
    problem: str | None = None,
    status_code: int = 200,
) -> Response:
    channels = await list_channels(session, viewer.user.org_id)
    context = {
        "viewer": viewer,
        "title": "Channels",
        "nav": "channels",
        "channels": channels,
        "outcomes": await last_outcomes(session, viewer.user.org_id),
        "form": form or EMPTY_FORM,
        "kinds": KINDS,
        "notice": NOTICES.get(request.query_params.get("done", "")),
        "problem": problem,
    }
    return render(request, "channels.html", context, status_code)


async def channel_page(
    request: Request,
    viewer: Viewer,
    session: SessionDep,
    channel: AlertChannel,
    *,
    form: dict[str, Any] | None = None,
    problem: str | None = None,
    status_code: int = 200,
) -> Response:
    context = {
        "viewer": viewer,
        "title": channel.name,
        "nav": "channels",
        "c": channel,
        "form": form or channel_values(channel),
        "kinds": KINDS,
        "deliveries": await channel_deliveries(session, channel, DELIVERIES_SHOWN),
        "notice": NOTICES.get(request.query_params.get("done", "")),
        "problem": problem,
    }
    return render(request, "channel.html", context, status_code)


@router.get("/channels")
async def channels(request: Request, viewer: ViewerDep, session: SessionDep) -> Response:
    admin_only(viewer)
    return await channels_page(request, viewer, session)


@router.post("/channels")
async def create(request: Request, viewer: AdminDep, session: SessionDep) -> Response:
    form = await request.form()
    settings = request.app.state.settings
    try:
        kind, fields = new_channel(form)
        channel, secret = await create_channel(session, settings, viewer.user, kind, fields)
    except ApiError as exc:
        if exc.status_code not in (409, 422):
            raise
        await rolled_back(session, viewer)
        return await channels_page(
            request,
            viewer,
            session,
            form=form_values(form),
            problem=exc.detail,
            status_code=exc.status_code,
        )
    if secret is None:
        return RedirectResponse("/channels?done=created", status_code=303)
    context = {"viewer": viewer, "title": "Webhook secret", "nav": "channels", "c": channel}
    return render(request, "channel_secret.html", {**context, "secret": secret})


@router.get("/channels/{channel_id}")
async def channel(
    request: Request, channel_id: str, viewer: ViewerDep, session: SessionDep
) -> Response:
    admin_only(viewer)
    found = await org_channel(session, viewer.user, channel_id)
    return await channel_page(request, viewer, session, found)


@router.post("/channels/{channel_id}")
async def update(
    request: Request, channel_id: str, viewer: AdminDep, session: SessionDep
) -> Response:
    found = await org_channel(session, viewer.user, channel_id)
    form = await request.form()
    try:
        fields, given = changed_channel(form)
        await update_channel(session, request.app.state.settings, found, fields, given)
    except ApiError as exc:
        if exc.status_code != 422:
            raise
        await rolled_back(session, viewer)
        found = await org_channel(session, viewer.user, channel_id)
        return await channel_page(
            request,
            viewer,
            session,
            found,
            form=form_values(form),
            problem=exc.detail,
            status_code=422,
        )
    return RedirectResponse(f"/channels/{channel_id}?done=saved", status_code=303)


@router.post("/channels/{channel_id}/test")
async def test(
    request: Request, channel_id: str, viewer: AdminDep, session: SessionDep
) -> Response:
    await send_test(session, await org_channel(session, viewer.user, channel_id))
    return RedirectResponse(f"/channels/{channel_id}?done=test", status_code=303)


@router.post("/channels/{channel_id}/delete")
async def delete(
    request: Request, channel_id: str, viewer: AdminDep, session: SessionDep
) -> Response:
    await delete_channel(session, await org_channel(session, viewer.user, channel_id))
    return RedirectResponse("/channels?done=deleted", status_code=303)

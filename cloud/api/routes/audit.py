"""The org's audit log (admins)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cloud.accounts.audit import audit_page
from cloud.api.deps import AdminUser, SessionDep
from cloud.api.schemas.errors import responses
from cloud.api.schemas.users import AuditList, AuditOut

router = APIRouter(tags=["audit"])

DEFAULT_PAGE = 100
MAX_PAGE = 500


@router.get("/v1/audit", response_model=AuditList, responses=responses(401, 403, 422, 503))
async def list_audit(
    admin: AdminUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> AuditList:
    """Who changed what, newest first; follow `next_cursor` for more."""
    entries, next_cursor = await audit_page(session, admin.org_id, limit, cursor)
    return AuditList(entries=[AuditOut.model_validate(e) for e in entries], next_cursor=next_cursor)

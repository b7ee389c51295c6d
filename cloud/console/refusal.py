"""After a service refused a console form: undo the transaction, keep the viewer usable."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from cloud.console.auth import Viewer


async def rolled_back(session: AsyncSession, viewer: Viewer) -> None:
    """Roll back and reload the signed-in user (a rollback expires it, and the page that
    shows the refusal reads it again: email, role)."""
    await session.rollback()
    await session.refresh(viewer.user)

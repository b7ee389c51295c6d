"""The database of a `python -m cloud` command: found exactly as `serve` finds it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloud.core.config import Settings
from cloud.core.database_url import resolve_database_url, stop_embedded_postgres
from cloud.core.db import create_engine_for, create_session_factory
from cloud.core.migrate import upgrade_to_head


def uses_embedded(settings: Settings) -> bool:
    return not (settings.database_url or os.environ.get("DATABASE_URL"))


def database_url_for(settings: Settings, migrate_embedded: bool = True) -> str:
    """DATABASE_URL, else the embedded server under the data dir (started or joined, migrated).

    A configured server is never migrated implicitly: `python -m cloud migrate` (or
    `alembic upgrade head`) is the explicit step there.
    """
    if uses_embedded(settings):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = resolve_database_url(settings.database_url, settings.embedded_pgdata)
    if uses_embedded(settings) and migrate_embedded:
        upgrade_to_head(url)
    return url


@dataclass
class CommandDatabase:
    settings: Settings
    url: str
    sessions: async_sessionmaker[AsyncSession]


@asynccontextmanager
async def open_command_database(settings: Settings) -> AsyncIterator[CommandDatabase]:
    """Sessions on the server's database for one command; the embedded server is released after.

    The embedded server keeps running when another process (a running `serve`) holds it.
    """
    try:
        url = await asyncio.to_thread(database_url_for, settings)
        engine = create_engine_for(url, settings)
        try:
            yield CommandDatabase(settings, url, create_session_factory(engine))
        finally:
            await engine.dispose()
    finally:
        if uses_embedded(settings):
            await asyncio.to_thread(stop_embedded_postgres)

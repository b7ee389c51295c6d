"""Async engine and sessions for the server (asyncpg); sync engines for scripts (psycopg2)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, sessionmaker

from cloud.config import Settings
from cloud.database_url import async_url, sync_url

CONNECT_TIMEOUT = 10  # seconds
COMMAND_TIMEOUT = 30  # seconds


def create_engine_for(url: str, settings: Settings) -> AsyncEngine:
    return create_async_engine(
        async_url(url),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
        pool_timeout=10,
        connect_args={"timeout": CONNECT_TIMEOUT, "command_timeout": COMMAND_TIMEOUT},
    )


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def session_scope(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with factory() as session:
        yield session


def create_sync_session_factory(url: str) -> sessionmaker[Session]:
    """For scripts and tests: a psycopg2 engine on the same database."""
    engine = sa.create_engine(sync_url(url), pool_pre_ping=True)
    return sessionmaker(engine, expire_on_commit=False)

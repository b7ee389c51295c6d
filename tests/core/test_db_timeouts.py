"""A silently dead link to PostgreSQL (blackholed: no answer, no RST) through the fault proxy:
a statement past its timeout fails as DatabaseUnavailable and its connection is dropped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from cloud.core.config import Settings
from cloud.core.db import DatabaseUnavailable, create_engine_for, driver_statements
from tests.support.db_proxy import proxy_to_database
from tests.support.fault_proxy import FaultProxy

TIMEOUT = 1.0  # seconds: connect and statement timeouts of the engine under test


@pytest.fixture
def db_link(database_url: str) -> Iterator[tuple[FaultProxy, str]]:
    proxy, url = proxy_to_database(database_url)
    yield proxy, url
    proxy.close()


async def test_statements_past_their_timeout_are_unavailable_and_drop_the_connection(
    db_link: tuple[FaultProxy, str], tmp_path: Path
) -> None:
    proxy, url = db_link
    settings = Settings(
        data_dir=tmp_path, db_connect_timeout_seconds=TIMEOUT, db_command_timeout_seconds=TIMEOUT
    )
    engine = create_engine_for(url, settings)
    try:
        async with engine.connect() as orm, engine.connect() as raw:
            for connection in (orm, raw):
                assert await connection.scalar(sa.text("SELECT 1")) == 1
            proxy.blackhole()
            with pytest.raises(DatabaseUnavailable, match="timed out"):
                await orm.scalar(sa.text("SELECT 2"))
            assert orm.invalidated
            # Hot paths send statements on the driver itself: handled the same way.
            with pytest.raises(DatabaseUnavailable, match="TimeoutError"):
                async with driver_statements(raw) as driver:
                    await driver.fetchval("SELECT 3")
            assert raw.invalidated
        # A new connection cannot get through either: refused as unavailable, not hung.
        with pytest.raises(DatabaseUnavailable):
            async with engine.connect() as fresh:
                await fresh.scalar(sa.text("SELECT 4"))
        proxy.heal()
        async with engine.connect() as healed:
            assert await healed.scalar(sa.text("SELECT 5")) == 5
    finally:
        proxy.heal()
        await engine.dispose()

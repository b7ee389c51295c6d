"""Migrations and models agree, and the chain round-trips on a real PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from cloud.core.database_url import create_database, sync_url
from cloud.core.migrate import alembic_config
from cloud.models import Base


def _table_names(url: str) -> set[str]:
    engine = sa.create_engine(sync_url(url))
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_round_trips(database_url: str) -> None:
    url = create_database(database_url, "visant_test")
    config = alembic_config(url)
    command.upgrade(config, "head")
    assert {"devices", "scheduled_triggers", "captures"} <= _table_names(url)
    command.downgrade(config, "base")
    assert _table_names(url) <= {"alembic_version"}
    command.upgrade(config, "head")
    assert {"orgs", "users", "user_tokens", "device_connections"} <= _table_names(url)


def test_models_match_migrations(database_url: str) -> None:
    engine = sa.create_engine(sync_url(database_url))
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations disagree: {diff}"


def test_single_head_with_date_stamped_files() -> None:
    script = ScriptDirectory.from_config(alembic_config("postgresql://unused"))
    assert len(script.get_heads()) == 1
    for revision in script.walk_revisions():
        assert revision.path.split("/")[-1][:8].isdigit(), revision.path

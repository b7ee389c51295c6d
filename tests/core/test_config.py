"""Settings: env names, and the placeholder secret refused outside development."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cloud.core.config import Environment, Settings


def test_placeholder_secret_refused_in_production() -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(environment=Environment.PRODUCTION)


def test_real_secret_accepted_in_production() -> None:
    assert Settings(environment=Environment.PRODUCTION, secret_key="x" * 40).secret_key


def test_env_names_are_prefixed_except_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISANT_PORT", "9123")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/db")
    settings = Settings()
    assert settings.port == 9123
    assert settings.database_url == "postgresql://u@h/db"

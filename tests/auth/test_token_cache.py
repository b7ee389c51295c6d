"""The token cache: hits within its TTL, revocation and expiry honoured, and on a live server."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cloud.auth.token_cache import TokenCache
from cloud.models import User, UserRole, UserToken
from tests.support.factories import Factory
from tests.support.live_server import LiveServer
from tests.support.waiting import wait_until


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _user() -> User:
    return User(
        user_id=uuid.uuid4(),
        org_id=uuid.uuid4(),
        email="a@example.test",
        password_hash="x",
        role=UserRole.OPERATOR,
        is_active=True,
        created_at=datetime.now(UTC),
    )


def test_a_hit_is_a_fresh_copy_until_the_ttl_passes() -> None:
    clock = FakeClock()
    cache = TokenCache(5.0, clock=clock)
    user = _user()
    cache.put("h", user, datetime.now(UTC) + timedelta(days=1))
    first, second = cache.get("h"), cache.get("h")
    assert first is not None and second is not None and first is not second
    assert (first.user_id, first.org_id, first.role) == (user.user_id, user.org_id, user.role)
    clock.now += 5.0  # the database must confirm the token again: a revocation shows now
    assert cache.get("h") is None


def test_an_actor_hit_is_the_users_plain_values_under_the_same_rules() -> None:
    """Read-only hot paths get one shared immutable Actor: no ORM instance per request, and
    the same TTL, expiry and forgetting as a User hit."""
    clock = FakeClock()
    cache = TokenCache(5.0, clock=clock)
    user = _user()
    cache.put("h", user, datetime.now(UTC) + timedelta(days=1))
    actor = cache.get_actor("h")
    assert actor is not None and cache.get_actor("h") is actor
    assert (actor.user_id, actor.org_id, actor.email, actor.role) == (
        user.user_id,
        user.org_id,
        user.email,
        UserRole.OPERATOR,
    )
    cache.forget_user(user.user_id)
    assert cache.get_actor("h") is None
    cache.put("h", user, datetime.now(UTC) + timedelta(days=1))
    clock.now += 5.0
    assert cache.get_actor("h") is None


def test_an_expired_token_stops_at_its_expiry_whatever_the_ttl() -> None:
    cache = TokenCache(3600.0, clock=FakeClock())
    cache.put("h", _user(), datetime.now(UTC) - timedelta(seconds=1))
    assert cache.get("h") is None


def test_forget_and_forget_user_drop_entries_and_a_zero_ttl_caches_nothing() -> None:
    cache = TokenCache(60.0, clock=FakeClock())
    user, other = _user(), _user()
    later = datetime.now(UTC) + timedelta(days=1)
    cache.put("a", user, later)
    cache.put("b", user, later)
    cache.put("c", other, later)
    cache.forget("a")
    assert cache.get("a") is None and cache.get("b") is not None
    cache.forget_user(user.user_id)
    assert cache.get("b") is None and cache.get("c") is not None
    off = TokenCache(0.0)
    off.put("a", user, later)
    assert off.get("a") is None


def test_bounded_size_drops_the_oldest() -> None:
    cache = TokenCache(60.0, max_entries=2, clock=FakeClock())
    later = datetime.now(UTC) + timedelta(days=1)
    for key in ("a", "b", "c"):
        cache.put(key, _user(), later)
    assert cache.get("a") is None and cache.get("b") is not None and cache.get("c") is not None


def test_a_token_revoked_in_the_database_stops_working_within_the_ttl(
    start_server: Callable[..., LiveServer], factory: Factory, db: sessionmaker[Session]
) -> None:
    server = start_server(auth_cache_seconds=1.0)
    user = factory.user()
    with server.client() as client:
        assert client.get("/v1/devices/connected", headers=user.headers).status_code == 200
        with db() as session:
            session.execute(
                sa.update(UserToken)
                .where(UserToken.user_id == user.user_id)
                .values(revoked_at=sa.func.now())
            )
            session.commit()
        # Cached for at most the TTL (1 s); the margin covers a loaded machine.
        wait_until(
            lambda: client.get("/v1/devices/connected", headers=user.headers).status_code == 401,
            timeout=15.0,
        )

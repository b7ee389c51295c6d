"""A short-lived, per-instance cache of bearer-token lookups (user routes run one query less).

A hit is trusted for at most `ttl` seconds after the database last confirmed the token; the
token's own expiry is checked on every hit, so an expired token stops at its expiry exactly.
A token revoked (or a user deactivated, or a role changed) in the database stops working on
every instance within `ttl`; on the instance that revoked it at once when it calls `forget`.
Only successful lookups are cached: a new token works immediately, a bad one costs a query.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import make_transient_to_detached

from cloud.auth.actor import Actor
from cloud.models import User

MAX_ENTRIES = 10_000  # oldest entries go first past this
_USER_COLUMNS = tuple(column.key for column in User.__table__.columns)


@dataclass(frozen=True, slots=True)
class _Entry:
    user: dict[str, Any]  # the user's column values when the database confirmed the token
    actor: Actor  # the same, for read-only callers (shared: it is immutable)
    token_expires_at: datetime
    confirmed_at: float  # the cache's clock


class TokenCache:
    """token hash -> the user it authenticated, for `ttl` seconds (0 turns the cache off)."""

    def __init__(
        self,
        ttl: float,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self._max = max_entries
        self._clock = clock  # replaceable so tests move time instead of sleeping
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def get(self, token_hash: str) -> User | None:
        """A detached copy of the cached user, or None when absent, stale or expired."""
        entry = self._fresh(token_hash)
        if entry is None:
            return None
        # A fresh instance per request: a route may change or attach it without touching
        # the cache. Detached with its identity, so a session treats it as the stored row.
        user = User(**entry.user)
        make_transient_to_detached(user)
        return user

    def get_actor(self, token_hash: str) -> Actor | None:
        """The cached user as plain values (no ORM instance built), or None as for `get`."""
        entry = self._fresh(token_hash)
        return None if entry is None else entry.actor

    def _fresh(self, token_hash: str) -> _Entry | None:
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        if self._clock() - entry.confirmed_at >= self.ttl or entry.token_expires_at <= datetime.now(
            UTC
        ):
            del self._entries[token_hash]
            return None
        return entry

    def put(self, token_hash: str, user: User, token_expires_at: datetime) -> None:
        if self.ttl <= 0:
            return
        values = {key: getattr(user, key) for key in _USER_COLUMNS}
        entry = _Entry(values, Actor.of(user), token_expires_at, self._clock())
        self._entries[token_hash] = entry
        self._entries.move_to_end(token_hash)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def forget(self, token_hash: str) -> None:
        """The token was revoked here: refuse it on this instance from now on."""
        self._entries.pop(token_hash, None)

    def forget_user(self, user_id: uuid.UUID) -> None:
        """The user was deactivated or changed here: every token of theirs is looked up again."""
        for token_hash in [h for h, e in self._entries.items() if e.user["user_id"] == user_id]:
            del self._entries[token_hash]

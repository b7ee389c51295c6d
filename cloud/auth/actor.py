"""Who makes a request, as plain values: what read-only hot paths need of a user."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from cloud.models import User, UserRole


@dataclass(frozen=True, slots=True)
class Actor:
    """A user's identity, org and role, detached from any session (no ORM state to build)."""

    user_id: uuid.UUID
    org_id: uuid.UUID
    email: str
    role: UserRole

    @classmethod
    def of(cls, user: User) -> Actor:
        return cls(user.user_id, user.org_id, user.email, UserRole(user.role))

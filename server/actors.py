"""Who is calling: the authenticated identity the service layer authorises against."""

from __future__ import annotations

import enum

import attrs


class Role(enum.StrEnum):
    USER = "user"
    ADMIN = "admin"
    WORKER = "worker"


@attrs.frozen(kw_only=True)
class Actor:
    id: str
    role: Role = Role.USER

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def may_see(self, owner_id: str) -> bool:
        return self.is_admin or self.id == owner_id


SUPERVISOR = Actor(id="supervisor", role=Role.ADMIN)

"""Who is calling: the authenticated identity the service layer authorises against."""

from __future__ import annotations

import enum

import attrs

from server.errors import Forbidden


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


#: Roles that act as users: the REST API and namespace ``/``, and creating jobs. Workers act
#: only through ``/workers``.
USER_ROLES = (Role.USER, Role.ADMIN)

#: The supervisor acting on jobs (recoveries, timeouts): audited with the role ``system``.
SUPERVISOR_ACTOR = Actor(id="supervisor", role=Role.ADMIN)


def require_admin(actor: Actor, doing: str) -> None:
    """Admins only: ``forbidden`` with "only admins can <doing>" for anyone else."""
    if not actor.is_admin:
        raise Forbidden(f"only admins can {doing}")


def require_user_role(actor: Actor, doing: str) -> None:
    """Users and admins only (:data:`USER_ROLES`): ``forbidden`` for a worker."""
    if actor.role not in USER_ROLES:
        raise Forbidden(f"workers cannot {doing}")

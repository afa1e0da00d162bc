"""Role checks attached to fields, so every operation states who may call it.

Example:
    >>> @strawberry.type
    ... class Query:
    ...     @strawberry.field(permission_classes=[IsAdmin])
    ...     def secret(self) -> str: return "only admins"
"""

from __future__ import annotations

from typing import Any, ClassVar

from strawberry.permission import BasePermission

from graph.context import Info
from runtime.core.auth import Role


class RequiresRole(BasePermission):
    """Passes when the caller holds one of `roles`; raises UNAUTHENTICATED or FORBIDDEN."""

    roles: ClassVar[tuple[Role, ...]] = ()

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        info.context.require(*self.roles)
        return True


class IsAdmin(RequiresRole):
    roles = (Role.ADMIN,)


class IsUser(RequiresRole):
    """Browsing and rating: users, and admins, who hold the user role too."""

    roles = (Role.USER,)


class IsPlatform(RequiresRole):
    roles = (Role.PLATFORM,)


class IsAnyone(RequiresRole):
    """Any valid token, whatever its role."""

    roles = (Role.ADMIN, Role.USER, Role.PLATFORM)

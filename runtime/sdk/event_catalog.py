"""The events plugins receive: the lifecycle types, the hook each reaches, the permission each
needs, the payload shapes, and the `Event` that `on_event` gets.

Payloads are normalised when an event is accepted (runtime.delivery.event_types), so a session
carries every spelling of its user and template; `SessionPayload` and `UserPayload` describe
them for type checkers (keys other than `id` may be missing, and unknown keys are kept).

Example:
    >>> hook_for("session.hibernated"), permission_for("user.login")
    ('on_session_hibernated', 'users:read')
    >>> visible_payload({"id": "s1", "email": "ann@example.com"}, ["sessions:read"])
    {'id': 's1'}
"""

# No `from __future__ import annotations`: TypedDict reads `Required[...]` only from evaluated
# annotations, and `__required_keys__` would otherwise be empty at run time.
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Required, TypedDict

SESSION_EVENTS = ("created", "started", "stopped", "hibernated", "woken", "deleted")
USER_EVENTS = ("created", "updated", "deleted", "login", "logout")
LIFECYCLE_TYPES = tuple(f"session.{name}" for name in SESSION_EVENTS) + tuple(
    f"user.{name}" for name in USER_EVENTS
)
# The hook each lifecycle type reaches: `session.created` → `on_session_created`.
HOOK_OF_TYPE = {event_type: "on_" + event_type.replace(".", "_") for event_type in LIFECYCLE_TYPES}
EVENT_HOOKS = tuple(HOOK_OF_TYPE.values())
_PERMISSION_OF_FAMILY = {"session": "sessions:read", "user": "users:read"}
# Personal data about a user, in any payload: seen only by plugins holding users:read.
PERSONAL_FIELDS = frozenset(
    {"email", "fullName", "full_name", "phone", "ipAddress", "ip_address", "ip"}
)


class SessionResources(TypedDict, total=False):
    memory: str
    cpu: str


class SessionPayload(TypedDict, total=False):
    """A `session.*` payload after normalisation: `user`, `userId` and `user_id` hold the same
    value, as do `template`, `templateName` and `template_name`."""

    id: Required[str | int]
    user: str
    userId: str
    user_id: str
    template: str
    templateName: str
    template_name: str
    state: str
    resources: SessionResources
    createdAt: str


class UserPayload(TypedDict, total=False):
    """A `user.*` payload after normalisation: `fullName` and `full_name` hold the same value.
    `email`, `fullName` and `ip` reach only plugins holding users:read (which user events need
    anyway)."""

    id: Required[str | int]
    username: str
    email: str
    fullName: str
    full_name: str
    role: str
    tier: str
    ip: str


@dataclass(frozen=True)
class Event:
    """An event as a plugin's `on_event` receives it."""

    id: str
    type: str
    payload: Mapping[str, Any]
    occurred_at: datetime | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)


def hook_for(event_type: str) -> str | None:
    """The SDK hook an event type reaches (None: only `on_event` receives it)."""
    return HOOK_OF_TYPE.get(event_type)


def permission_for(event_type: str) -> str | None:
    """The manifest permission a plugin needs to receive events of this type."""
    return _PERMISSION_OF_FAMILY.get(event_type.split(".", 1)[0])


def visible_payload(payload: Mapping[str, Any], permissions: Sequence[str]) -> Mapping[str, Any]:
    """The payload as a plugin with `permissions` may see it: `payload` itself when that
    hides nothing, else a filtered copy."""
    if "users:read" in permissions:
        return payload
    return {key: value for key, value in payload.items() if key not in PERSONAL_FIELDS}

"""The event catalog: which types exist, which hook each reaches, and payload normalisation.

The original plugins read two key families (`user_id` and `userId`, `template_name` and
`templateName`); payloads are normalised once, when the event is accepted, so every plugin sees
every spelling.

Example:
    >>> normalise_payload("session.created", {"user_id": "ann", "template": "firefox"})["userId"]
    'ann'
    >>> hook_for("session.hibernated")
    'on_session_hibernated'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from runtime.errors import BadUserInput, FieldProblem

SESSION_EVENTS = ("created", "started", "stopped", "hibernated", "woken", "deleted")
USER_EVENTS = ("created", "updated", "deleted", "login", "logout")
LIFECYCLE_TYPES = tuple(f"session.{name}" for name in SESSION_EVENTS) + tuple(
    f"user.{name}" for name in USER_EVENTS
)
OTHER_KNOWN_TYPES = (
    "session.heartbeat",
    "session.error",
    "session.terminated",
    "session.clipboard_access",
    "session.file_transfer",
    "session.screen_capture",
    "session.data_accessed",
    "user.data_export",
    "template.created",
    "template.updated",
    "template.deleted",
    "quota.exceeded",
    "audit.violation",
    "plugin.installed",
    "plugin.enabled",
    "plugin.disabled",
    "plugin.uninstalled",
    "plugin.updated",
    "plugin.error",
    "repository.sync.started",
    "repository.sync.completed",
    "repository.sync.failed",
)
KNOWN_TYPES = frozenset(LIFECYCLE_TYPES + OTHER_KNOWN_TYPES)
_CUSTOM = re.compile(r"^custom\.[a-z0-9][a-z0-9_.-]{0,99}$")

# Alternative spellings accepted in payloads; after normalisation all of them are present.
_ALIASES: dict[str, tuple[tuple[str, ...], ...]] = {
    "session": (("user", "user_id", "userId"), ("template", "template_name", "templateName")),
    "user": (("fullName", "full_name"),),
}


def hook_for(event_type: str) -> str | None:
    """The SDK hook an event type reaches (None: only `on_event` receives it)."""
    if event_type in LIFECYCLE_TYPES:
        return "on_" + event_type.replace(".", "_")
    return None


def permission_for(event_type: str) -> str | None:
    """The manifest permission a plugin needs to receive events of this type."""
    family = event_type.split(".", 1)[0]
    return {"session": "sessions:read", "user": "users:read"}.get(family)


def check_type(event_type: str, published: Callable[[str], bool] = lambda _: False) -> None:
    """Accept known types, `custom.*`, and `<plugin>.<name>` types that plugins publish."""
    if event_type in KNOWN_TYPES or _CUSTOM.match(event_type) or published(event_type):
        return
    raise BadUserInput(
        f"event type {event_type!r} is not known: use one of the catalog's types, "
        "custom.<name>, or a type a plugin publishes",
        [FieldProblem("type", "unknown event type")],
    )


def _unify(payload: dict[str, Any], spellings: tuple[str, ...]) -> None:
    value = next((payload[key] for key in spellings if payload.get(key) is not None), None)
    if value is not None:
        for key in spellings:
            payload.setdefault(key, value)


def normalise_payload(event_type: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The payload with every accepted spelling of its family's keys present."""
    normalised = dict(payload)
    family = event_type.split(".", 1)[0]
    for spellings in _ALIASES.get(family, ()):
        _unify(normalised, spellings)
    return normalised


# Personal data about a user, in any payload: seen only by plugins holding users:read.
PERSONAL_FIELDS = frozenset(
    {"email", "fullName", "full_name", "phone", "ipAddress", "ip_address", "ip"}
)


def visible_payload(payload: Mapping[str, Any], permissions: Sequence[str]) -> Mapping[str, Any]:
    """The payload as a plugin with `permissions` may see it: `payload` itself when that
    hides nothing, else a filtered copy.

    Example:
        >>> visible_payload({"id": "s1", "email": "ann@example.com"}, ["sessions:read"])
        {'id': 's1'}
    """
    if "users:read" in permissions:
        return payload
    return {key: value for key, value in payload.items() if key not in PERSONAL_FIELDS}

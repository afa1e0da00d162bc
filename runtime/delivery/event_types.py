"""The event catalog as the server applies it: which types exist, who may emit each, and
payload normalisation. What plugins see of it (the lifecycle types, their hooks and
permissions, the payload shapes) is the SDK's: runtime.sdk.event_catalog.

The original plugins read two key families (`user_id` and `userId`, `template_name` and
`templateName`); payloads are normalised once, when the event is accepted, so every plugin sees
every spelling.

Example:
    >>> normalise_payload("session.created", {"user_id": "ann", "template": "firefox"})["userId"]
    'ann'

Who may emit what (`check_origin`): the platform the catalog's types and `custom.*`; the server
itself its own `plugin.*` and `repository.sync.*`; a plugin only `<its name>.<name>`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from runtime.core.errors import BadUserInput, FieldProblem, Forbidden
from runtime.sdk.event_catalog import LIFECYCLE_TYPES

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
# What the server reports of itself: a caller reporting them would forge its history.
SERVER_TYPES = frozenset(t for t in KNOWN_TYPES if t.startswith(("plugin.", "repository.")))
# The first parts of the catalog's types and of custom ones: no plugin's events take them.
RESERVED_FAMILIES = frozenset(t.split(".", 1)[0] for t in KNOWN_TYPES) | {"custom"}
_CUSTOM = re.compile(r"^custom\.[a-z0-9][a-z0-9_.-]{0,99}$")
# The name a plugin gives its events: no dot, so `<plugin>.<name>` names its plugin alone.
_PUBLISHED_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,98}$")

# Alternative spellings accepted in payloads; after normalisation all of them are present.
_ALIASES: dict[str, tuple[tuple[str, ...], ...]] = {
    "session": (("user", "user_id", "userId"), ("template", "template_name", "templateName")),
    "user": (("fullName", "full_name"),),
}


def check_type(
    event_type: str, published: Callable[[str], bool] = lambda _: False, field: str = "type"
) -> None:
    """Accept known types, `custom.*`, and `<plugin>.<name>` types that plugins publish."""
    if event_type in KNOWN_TYPES or _CUSTOM.match(event_type) or published(event_type):
        return
    raise BadUserInput(
        f"event type {event_type!r} is not known: use one of the catalog's types, "
        "custom.<name>, or a type a plugin publishes",
        [FieldProblem(field, "unknown event type")],
    )


@dataclass(frozen=True)
class Origin:
    """Who emits an event: the platform (emitEvent), the server itself, or a plugin."""

    kind: Literal["platform", "server", "plugin"]
    plugin: str = ""

    @classmethod
    def of_plugin(cls, name: str) -> Origin:
        return cls("plugin", name)


PLATFORM = Origin("platform")
SERVER = Origin("server")


def check_origin(
    event_type: str,
    origin: Origin,
    published: Callable[[str], bool] = lambda _: False,
    field: str = "type",
) -> None:
    """Refuse a type its emitter may not emit (FORBIDDEN) or that does not exist
    (BAD_USER_INPUT), naming the rule; `published` tells the types plugins own."""
    if origin.kind == "plugin":
        _check_plugin_type(event_type, origin.plugin, field)
    elif origin.kind == "server":
        check_type(event_type, published, field)
    else:
        _check_platform_type(event_type, published, field)


def _check_platform_type(event_type: str, published: Callable[[str], bool], field: str) -> None:
    if event_type in SERVER_TYPES:
        raise _forbidden(
            f"event type {event_type!r} is reported by the server itself, not emitted by callers",
            field,
        )
    if event_type in KNOWN_TYPES or _CUSTOM.match(event_type):
        return
    if published(event_type):
        owner = event_type.rsplit(".", 1)[0]
        raise _forbidden(
            f"event type {event_type!r} belongs to the plugin {owner}: only that plugin "
            "publishes it; the platform emits the catalog's types and custom.<name>",
            field,
        )
    check_type(event_type, field=field)


def _check_plugin_type(event_type: str, plugin: str, field: str) -> None:
    prefix = f"{plugin}."
    name = event_type[len(prefix) :] if event_type.startswith(prefix) else ""
    if not plugin or not name:
        raise _forbidden(
            f"the plugin {plugin} publishes only its own events, {plugin}.<name>, "
            f"not {event_type!r}",
            field,
        )
    if plugin.split(".", 1)[0] in RESERVED_FAMILIES:
        raise _forbidden(
            f"the plugin {plugin} cannot publish events: its name begins like the catalog's "
            "types, whose emitters are the platform and the server",
            field,
        )
    if not _PUBLISHED_NAME.match(name):
        raise BadUserInput(
            f"{name!r} cannot name an event: use letters, digits, '_' or '-' (at most 99)",
            [FieldProblem(field, "not an event name")],
        )


def publishing_refused(plugin: str) -> Forbidden:
    """What a plugin whose manifest lacks events:publish is told when it publishes."""
    return Forbidden(
        f"the plugin {plugin} may not publish events: its manifest's permissions lack "
        "events:publish"
    )


def _forbidden(message: str, field: str) -> Forbidden:
    return Forbidden(message, fields=[FieldProblem(field, "not yours to emit").as_dict()])


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

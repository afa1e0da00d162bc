"""What notification plugins share: how an event reads to a person, and hourly rate limits.

Each notification plugin renders a `Notice` in its vendor's format; `HourlyLimit` keeps the
messages per hour under the configured cap without losing any: what is held back is counted
and summarised in the next message that goes out.

Example:
    >>> notice = describe("session.created", {"id": "s1", "user": "ann", "template": "firefox",
    ...                                       "resources": {"memory": "512Mi", "cpu": "250m"}},
    ...                   include_details=True)
    >>> notice.title, [f.title for f in notice.fields]
    ('New Session Created', ['User', 'Template', 'Session ID', 'Memory', 'CPU'])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from runtime.sdk.context import Storage


@dataclass(frozen=True)
class NoticeField:
    title: str
    value: str
    short: bool = True


@dataclass(frozen=True)
class Notice:
    """A vendor-neutral message: `severity` is good, warning, danger or info."""

    event_type: str
    title: str
    emoji: str
    severity: str
    fields: list[NoticeField] = field(default_factory=list)
    subject_id: str | None = None

    @property
    def text(self) -> str:
        return f"{self.emoji} {self.title}"


# title, emoji, severity for each lifecycle event
_STYLE: dict[str, tuple[str, str, str]] = {
    "session.created": ("New Session Created", "🚀", "good"),
    "session.started": ("Session Started", "▶️", "good"),
    "session.stopped": ("Session Stopped", "⏹️", "warning"),
    "session.hibernated": ("Session Hibernated", "💤", "warning"),
    "session.woken": ("Session Woken", "☀️", "good"),
    "session.deleted": ("Session Deleted", "🗑️", "danger"),
    "session.error": ("Session Error", "❗", "danger"),
    "user.created": ("New User Created", "👤", "good"),
    "user.updated": ("User Updated", "✏️", "info"),
    "user.deleted": ("User Deleted", "🗑️", "danger"),
    "user.login": ("User Logged In", "🔑", "info"),
    "user.logout": ("User Logged Out", "👋", "info"),
}

NOTIFY_KEYS = {
    event_type: "notifyOn" + "".join(part.capitalize() for part in event_type.split("."))
    for event_type in _STYLE
}


def config_key(event_type: str) -> str:
    """The `notifyOn…` switch of an event type, e.g. notifyOnSessionCreated."""
    return NOTIFY_KEYS.get(
        event_type,
        "notifyOn" + "".join(p.capitalize() for p in event_type.replace("_", ".").split(".")),
    )


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def describe(event_type: str, payload: Mapping[str, Any], *, include_details: bool) -> Notice:
    """How an event reads in a notification, with the fields the original Slack plugin sent."""
    title, emoji, severity = _STYLE.get(event_type, (event_type, "🔔", "info"))
    fields: list[NoticeField] = []

    def add(name: str, value: Any, short: bool = True) -> None:
        text = _text(value)
        if text is not None:
            fields.append(NoticeField(name, text, short))

    if event_type.startswith("session."):
        add("User", payload.get("user"))
        add("Template", payload.get("template"))
        add("Session ID", payload.get("id"), short=False)
        add("Error", payload.get("error"), short=False)
        resources = payload.get("resources")
        if include_details and isinstance(resources, Mapping):
            add("Memory", resources.get("memory"))
            add("CPU", resources.get("cpu"))
    elif event_type.startswith("user."):
        add("Username", payload.get("username") or payload.get("id"))
        add("Email", payload.get("email"))
        add("Name", payload.get("fullName"))
        add("Role", payload.get("role"))
    else:
        for key, value in list(payload.items())[:8]:
            if not isinstance(value, Mapping | list):
                add(key, value)
    return Notice(event_type, title, emoji, severity, fields, _text(payload.get("id")))


@dataclass(frozen=True)
class Allowance:
    """Whether a message may go now, and how many were held back before it."""

    send: bool
    held_back: int = 0


class HourlyLimit:
    """At most `per_hour` messages per clock hour, counted in the plugin's storage so the count
    survives restarts and is shared by replicas. A held-back message is counted; the next
    message sent reports the count (`held_back`), then the count starts again."""

    KEY = "rate-window"

    def __init__(self, storage: Storage, per_hour: int) -> None:
        self._storage = storage
        self._per_hour = per_hour

    async def take(self, now: datetime | None = None) -> Allowance:
        hour = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H")
        decided: list[Allowance] = []

        def change(stored: Any) -> dict[str, Any]:
            window: dict[str, Any] = dict(stored or {})
            if window.get("hour") != hour:
                window = {"hour": hour, "sent": 0, "held": window.get("held", 0)}
            if window["sent"] >= self._per_hour:
                window["held"] += 1
                decided.append(Allowance(send=False))
            else:
                decided.append(Allowance(send=True, held_back=window["held"]))
                window["sent"] += 1
                window["held"] = 0
            return window

        await self._storage.update(self.KEY, change, {})
        return decided[-1]

    async def give_back(self, allowance: Allowance) -> None:
        """Undo `take` for a message that was not delivered (it will be retried)."""

        def change(stored: Any) -> dict[str, Any]:
            window: dict[str, Any] = dict(stored or {})
            if window:
                window["sent"] = max(0, window.get("sent", 0) - 1)
                window["held"] = window.get("held", 0) + allowance.held_back
            return window

        await self._storage.update(self.KEY, change, {})

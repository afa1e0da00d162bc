"""PagerDuty Events API v2 bodies built from StreamSpace events (no I/O here).

A trigger carries the full alert (`payload` with summary, source, severity, ...); acknowledge
and resolve carry only the routing key, the action and the dedup key, which is how PagerDuty
finds the incident a trigger opened. The dedup key is derived from the event's subject (the
session or user id), so `session.error` and a later `session.started` of the same session name
the same incident.

Example:
    >>> settings = Settings.of({"routingKey": "k" * 32})
    >>> settings.action_for("session.error"), settings.action_for("session.started")
    ('trigger', 'resolve')
    >>> dedup_key(settings.dedup_template, "session.error", {"id": "s1"}, "e1")
    'streamspace/session/s1'
    >>> summary_for("session.error", {"id": "s1", "user": "ann", "error": "OOMKilled"})
    'Session Error: session s1 of ann — OOMKilled'
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from runtime.sdk import describe

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SEVERITIES = ("critical", "error", "warning", "info")
MAX_SUMMARY = 1024
MAX_DEDUP_KEY = 255
# Long strings (stack traces) are cut so one event stays far below PagerDuty's 512 KB limit.
MAX_DETAIL_TEXT = 8192
DEFAULT_TEMPLATE = "streamspace/{family}/{subject}"
DEFAULT_TRIGGER_ON = ("session.error", "session.terminated", "quota.exceeded", "audit.violation")
DEFAULT_RESOLVE_ON = ("session.started", "session.woken")
DEFAULT_SEVERITIES = {
    "session.error": "error",
    "session.terminated": "warning",
    "quota.exceeded": "warning",
    "audit.violation": "critical",
}
PLACEHOLDERS = ("family", "subject", "type", "eventId")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
# Payload keys that name what an event is about, most specific first.
_SUBJECT_KEYS = ("id", "sessionId", "userId", "user")
# snake_case spellings the emitter adds beside the camelCase keys of the same value.
_ALIASES = {"user_id": "userId", "template_name": "templateName", "full_name": "fullName"}
# Payload keys that say what went wrong, shown after the subject in the summary.
_REASON_KEYS = ("error", "reason", "message", "violation", "description")


class ConfigError(ValueError):
    """A configuration the schema accepts but that cannot work (e.g. overlapping lists)."""


@dataclass(frozen=True)
class Settings:
    """The plugin's configuration, read once per event from `ctx.config`."""

    routing_key: str
    events_url: str = EVENTS_URL
    trigger_on: frozenset[str] = frozenset(DEFAULT_TRIGGER_ON)
    resolve_on: frozenset[str] = frozenset(DEFAULT_RESOLVE_ON)
    acknowledge_on: frozenset[str] = frozenset()
    severity_map: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_SEVERITIES))
    default_severity: str = "warning"
    source: str = "streamspace"
    dedup_template: str = DEFAULT_TEMPLATE
    client_url: str | None = None
    timeout: float = 10.0

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> Settings:
        settings = cls(
            routing_key=str(config["routingKey"]),
            events_url=str(config.get("eventsUrl") or EVENTS_URL),
            trigger_on=frozenset(config.get("triggerOn", DEFAULT_TRIGGER_ON)),
            resolve_on=frozenset(config.get("resolveOn", DEFAULT_RESOLVE_ON)),
            acknowledge_on=frozenset(config.get("acknowledgeOn") or ()),
            severity_map=dict(config.get("severityMap", DEFAULT_SEVERITIES)),
            default_severity=str(config.get("defaultSeverity") or "warning"),
            source=str(config.get("source") or "streamspace"),
            dedup_template=str(config.get("dedupKeyTemplate") or DEFAULT_TEMPLATE),
            client_url=config.get("clientUrl") or None,
            timeout=float(config.get("timeoutSeconds", 10)),
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse what the schema cannot express: one type with two actions, bad templates."""
        lists = {
            "triggerOn": self.trigger_on,
            "acknowledgeOn": self.acknowledge_on,
            "resolveOn": self.resolve_on,
        }
        names = list(lists)
        for index, first in enumerate(names):
            for second in names[index + 1 :]:
                both = sorted(lists[first] & lists[second])
                if both:
                    raise ConfigError(f"{', '.join(both)} cannot be in both {first} and {second}")
        unknown = sorted(set(_PLACEHOLDER.findall(self.dedup_template)) - set(PLACEHOLDERS))
        if unknown:
            raise ConfigError(f"dedupKeyTemplate has unknown placeholders: {', '.join(unknown)}")
        bad = sorted(t for t, s in self.severity_map.items() if s not in SEVERITIES)
        if bad or self.default_severity not in SEVERITIES:
            raise ConfigError(f"severities must be one of {', '.join(SEVERITIES)}")

    def action_for(self, event_type: str) -> str | None:
        """The Events API action an event type asks for; None when it is not configured."""
        if event_type in self.trigger_on:
            return "trigger"
        if event_type in self.acknowledge_on:
            return "acknowledge"
        if event_type in self.resolve_on:
            return "resolve"
        return None

    def severity_for(self, event_type: str) -> str:
        return self.severity_map.get(event_type, self.default_severity)


def _scalar(value: Any) -> str | None:
    if value is None or value == "" or isinstance(value, Mapping | list | tuple):
        return None
    return str(value)


def family_of(event_type: str) -> str:
    return event_type.split(".", 1)[0]


def subject_of(payload: Mapping[str, Any], event_id: str) -> str:
    """What the event is about: the session or user id, else the event itself."""
    for key in _SUBJECT_KEYS:
        value = _scalar(payload.get(key))
        if value is not None:
            return value
    return event_id


def dedup_key(template: str, event_type: str, payload: Mapping[str, Any], event_id: str) -> str:
    """The incident key of an event; at most 255 characters, the same for the same subject."""
    values = {
        "family": family_of(event_type),
        "subject": subject_of(payload, event_id),
        "type": event_type,
        "eventId": event_id,
    }
    key = _PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), template)
    if len(key) <= MAX_DEDUP_KEY:
        return key
    # Too long for PagerDuty: a stable digest keeps trigger and resolve on the same key.
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{key[: MAX_DEDUP_KEY - len(digest) - 1]}#{digest}"


def _title(event_type: str, payload: Mapping[str, Any]) -> str:
    title = describe(event_type, payload, include_details=False).title
    if title != event_type:
        return title
    # describe() knows the lifecycle types; others read as "Quota Exceeded", "Audit Violation".
    words = event_type.replace("_", " ").replace(".", " ").split()
    return " ".join(word.capitalize() for word in words) or event_type


def _about(event_type: str, payload: Mapping[str, Any]) -> str | None:
    family = family_of(event_type)
    if family == "session":
        session = _scalar(payload.get("id")) or _scalar(payload.get("sessionId"))
        user = _scalar(payload.get("user")) or _scalar(payload.get("userId"))
        template = _scalar(payload.get("template")) or _scalar(payload.get("templateName"))
        text = f"session {session}" if session else "a session"
        text += f" of {user}" if user else ""
        return text + (f" ({template})" if template else "")
    if family == "user":
        user = _scalar(payload.get("username")) or _scalar(payload.get("id"))
        return f"user {user}" if user else None
    user = _scalar(payload.get("username")) or _scalar(payload.get("userId"))
    user = user or _scalar(payload.get("user"))
    return f"user {user}" if user else _scalar(payload.get("id"))


def summary_for(event_type: str, payload: Mapping[str, Any]) -> str:
    """One line for the incident title: what happened, to what, and why (≤1024 characters)."""
    text = _title(event_type, payload)
    about = _about(event_type, payload)
    if about:
        text += f": {about}"
    reason = next((r for k in _REASON_KEYS if (r := _scalar(payload.get(k)))), None)
    if reason:
        text += f" — {' '.join(reason.split())}"
    return text if len(text) <= MAX_SUMMARY else text[: MAX_SUMMARY - 1] + "…"


def _trimmed(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_DETAIL_TEXT:
        return value[:MAX_DETAIL_TEXT] + f"… ({len(value) - MAX_DETAIL_TEXT} more characters)"
    if isinstance(value, Mapping):
        return {str(k): _trimmed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_trimmed(v) for v in value]
    return value


def custom_details(event_type: str, event_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The payload's fields (already limited by the plugin's permissions) and the event's id."""
    details: dict[str, Any] = _trimmed(payload)
    # Normalisation adds every spelling of a key; one is enough for a person reading the alert.
    for alias, name in _ALIASES.items():
        if alias in details and details.get(name) == details[alias]:
            del details[alias]
    details.setdefault("eventType", event_type)
    details.setdefault("eventId", event_id)
    return details


def trigger_body(
    settings: Settings,
    *,
    event_type: str,
    event_id: str,
    payload: Mapping[str, Any],
    key: str,
    occurred_at: datetime,
    severity: str | None = None,
) -> dict[str, Any]:
    """A trigger event as the Events API v2 documents it."""
    family = family_of(event_type)
    template = _scalar(payload.get("templateName")) or _scalar(payload.get("template"))
    body: dict[str, Any] = {
        "routing_key": settings.routing_key,
        "event_action": "trigger",
        "dedup_key": key,
        "payload": {
            "summary": summary_for(event_type, payload),
            "source": settings.source,
            "severity": severity or settings.severity_for(event_type),
            "timestamp": occurred_at.isoformat(),
            # component: the affected part (a session's template), group: its family,
            # class: the kind of event, as PagerDuty's fields are described.
            "component": template if family == "session" and template else family,
            "group": family,
            "class": event_type,
            "custom_details": custom_details(event_type, event_id, payload),
        },
        "client": "StreamSpace",
    }
    if settings.client_url:
        body["client_url"] = settings.client_url
    return body


def follow_up_body(settings: Settings, action: str, key: str) -> dict[str, Any]:
    """An acknowledge or resolve event: PagerDuty needs only the key of the incident."""
    if action not in ("acknowledge", "resolve"):
        raise ValueError(f"{action!r} is not acknowledge or resolve")
    return {"routing_key": settings.routing_key, "event_action": action, "dedup_key": key}

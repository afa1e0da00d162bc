"""What an e-mail says: template rendering and the MIME message.

Templates are Jinja2, in a sandbox because an admin may replace them from the plugin's
configuration (a template is code: the sandbox keeps it to reading the values it is given).
The HTML template is autoescaped, so a payload value such as a user's full name can never
inject markup; the subject and text parts are not, as they are not HTML.

Every template sees:
    subject_prefix  the configured prefix, e.g. "[StreamSpace]"
    events          list of notices (one, or several in a digest), each with type, title,
                    emoji, severity, color, subject_id, fields [{title, value, short}], at
                    (ISO 8601 time) and payload (the event's normalised payload)
    event           the first notice (the only one outside a digest)
    count           len(events)
    digest          whether this message collects several events
    test            whether this is the message testPlugin sends
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from runtime.sdk import describe

TEMPLATE_DIR = Path(__file__).with_name("templates")
KINDS = ("subject", "text", "html")
CONFIG_KEYS = {"subject": "subjectTemplate", "text": "textTemplate", "html": "htmlTemplate"}
# The colours chat tools use for the same severities, so every channel looks alike.
COLORS = {"good": "#2eb886", "warning": "#daa038", "danger": "#a30200", "info": "#439fe0"}


class TemplateProblem(ValueError):
    """A template that cannot be compiled or rendered; the message names the config key."""


@cache
def default_source(kind: str) -> str:
    return (TEMPLATE_DIR / f"{kind}.j2").read_text(encoding="utf-8")


def _environment(autoescape: bool) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


class Templates:
    """The three templates of a message, each from config when set there, else built in."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._compiled: dict[str, jinja2.Template] = {}
        for kind in KINDS:
            key = CONFIG_KEYS[kind]
            override = config.get(key)
            source = str(override) if override else default_source(kind)
            where = key if override else f"the built-in {kind}.j2"
            try:
                self._compiled[kind] = _environment(kind == "html").from_string(source)
            except jinja2.TemplateSyntaxError as error:
                raise TemplateProblem(
                    f"{where} is not a valid Jinja2 template: line {error.lineno}: {error.message}"
                ) from None

    def render(self, context: Mapping[str, Any]) -> tuple[str, str, str]:
        """(subject, text, html); a template that fails while rendering is a TemplateProblem."""
        rendered: dict[str, str] = {}
        for kind in KINDS:
            try:
                rendered[kind] = self._compiled[kind].render(context)
            except jinja2.TemplateError as error:
                raise TemplateProblem(
                    f"{CONFIG_KEYS[kind]} failed to render: {type(error).__name__}: {error}"
                ) from None
        # A header is one line: whatever whitespace the template left is collapsed.
        subject = " ".join(rendered["subject"].split())
        return subject, rendered["text"].strip() + "\n", rendered["html"]


def notice_item(
    event_type: str,
    payload: Mapping[str, Any],
    *,
    include_details: bool,
    at: datetime | None = None,
) -> dict[str, Any]:
    """One event as the templates see it: plain JSON, so a digest can queue it in storage."""
    notice = describe(event_type, payload, include_details=include_details)
    return {
        "type": event_type,
        "title": notice.title,
        "emoji": notice.emoji,
        "severity": notice.severity,
        "color": COLORS.get(notice.severity, COLORS["info"]),
        "subject_id": notice.subject_id,
        "fields": [{"title": f.title, "value": f.value, "short": f.short} for f in notice.fields],
        "at": (at or datetime.now(UTC)).isoformat(timespec="seconds"),
        "payload": dict(payload),
    }


def template_context(
    items: Sequence[Mapping[str, Any]], subject_prefix: str, *, test: bool = False
) -> dict[str, Any]:
    return {
        "subject_prefix": subject_prefix,
        "events": list(items),
        "event": items[0],
        "count": len(items),
        "digest": len(items) > 1,
        "test": test,
    }


def build_message(
    *,
    sender: str,
    sender_name: str,
    recipients: Sequence[str],
    subject: str,
    text: str,
    html: str,
    event_types: Sequence[str],
) -> EmailMessage:
    """multipart/alternative with the text part first: clients show the last part they can."""
    message = EmailMessage()
    local, _, domain = sender.rpartition("@")
    message["From"] = Address(display_name=sender_name, username=local, domain=domain)
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    # The sender's domain: make_msgid would otherwise ask DNS for this host's name.
    message["Message-ID"] = make_msgid(idstring="streamspace", domain=domain or "localhost")
    # RFC 3834: machine-sent, so out-of-office replies are not sent back to it.
    message["Auto-Submitted"] = "auto-generated"
    message["X-StreamSpace-Events"] = ", ".join(dict.fromkeys(event_types))
    message.set_content(text, subtype="plain", charset="utf-8")
    message.add_alternative(html, subtype="html", charset="utf-8")
    return message

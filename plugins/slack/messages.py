"""Slack incoming-webhook message bodies built from a `Notice`.

Two shapes, chosen by the `format` setting:

- `attachments`: the seed's "Message Examples": `text`, one coloured attachment with `title`,
  `fields` ({title, value, short}), `footer` "StreamSpace" and `ts` (epoch seconds).
- `blocks`: Block Kit: a header, sections of fields, a context line; `text` stays as the
  fallback Slack shows in notifications.

Example:
    >>> from runtime.sdk import Notice, NoticeField
    >>> notice = Notice("session.created", "New Session Created", "🚀", "good",
    ...                 [NoticeField("User", "john.doe")])
    >>> body = build_message(notice, style="attachments", ts=1700000000, held_back=0,
    ...                      identity={"channel": "#dev-alerts"})
    >>> body["text"], body["channel"], body["attachments"][0]["color"]
    ('🚀 New Session Created', '#dev-alerts', 'good')
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from runtime.sdk import Notice, NoticeField

FOOTER = "StreamSpace"
# Slack's named attachment colours; "info" has no name, so it gets Slack's own blue.
COLOURS = {"good": "good", "warning": "warning", "danger": "danger", "info": "#439FE0"}
# The seed's example titles; every other event gets the "<family> Details" title.
ATTACHMENT_TITLES = {"session.hibernated": "Session Hibernated Due to Inactivity"}
# Block Kit limits (api.slack.com/reference/block-kit/blocks): longer text is refused with
# invalid_blocks, so values are cut rather than the whole message lost.
HEADER_LIMIT = 150
FIELDS_PER_SECTION = 10
# Keeps a field under Block Kit's 2,000 characters, readable, and the body far below Slack's
# 40,000 characters.
VALUE_LIMIT = 1900


def escape(text: str) -> str:
    """Slack's required escaping: user-supplied text (a name like `<!channel>`) must not turn
    into a mention or a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def held_back_note(count: int) -> str | None:
    """The rate limit's summary carried by the next message that goes out."""
    if count <= 0:
        return None
    if count == 1:
        return "(1 more notification was held back by the rate limit)"
    return f"({count} more notifications were held back by the rate limit)"


def attachment_title(notice: Notice) -> str:
    if notice.event_type in ATTACHMENT_TITLES:
        return ATTACHMENT_TITLES[notice.event_type]
    family = notice.event_type.split(".", 1)[0]
    return {"session": "Session Details", "user": "User Details"}.get(family, "Details")


def identity_fields(identity: Mapping[str, Any]) -> dict[str, str]:
    """channel, username and icon_emoji as Slack names them; empty settings are left out so
    the webhook's own channel, name and icon apply."""
    names = {"channel": "channel", "username": "username", "iconEmoji": "icon_emoji"}
    return {
        slack: str(identity[key])
        for key, slack in names.items()
        if key in identity and identity[key] not in (None, "")
    }


def build_message(
    notice: Notice,
    *,
    style: str,
    ts: int,
    held_back: int,
    identity: Mapping[str, Any],
) -> dict[str, Any]:
    """The JSON body POSTed to the webhook."""
    note = held_back_note(held_back)
    text = notice.text if note is None else f"{notice.text}\n{note}"
    body: dict[str, Any] = {**identity_fields(identity), "text": text}
    if style == "blocks":
        body["blocks"] = blocks(notice, ts, note)
    else:
        body["attachments"] = [attachment(notice, ts)]
    return body


def attachment(notice: Notice, ts: int) -> dict[str, Any]:
    return {
        "color": COLOURS.get(notice.severity, COLOURS["info"]),
        "title": attachment_title(notice),
        "fields": [
            {"title": f.title, "value": escape(cut(f.value, VALUE_LIMIT)), "short": f.short}
            for f in notice.fields
        ],
        "footer": FOOTER,
        "ts": ts,
    }


def _field_text(field: NoticeField) -> str:
    return f"*{escape(field.title)}*\n{escape(cut(field.value, VALUE_LIMIT))}"


def blocks(notice: Notice, ts: int, note: str | None) -> list[dict[str, Any]]:
    header = {
        "type": "header",
        "text": {"type": "plain_text", "text": cut(notice.text, HEADER_LIMIT), "emoji": True},
    }
    result: list[dict[str, Any]] = [header]
    # Short fields sit side by side in a section's two columns; a long one (a session id)
    # gets a full-width section of its own. Runs keep the notice's field order.
    run: list[NoticeField] = []

    def flush() -> None:
        for start in range(0, len(run), FIELDS_PER_SECTION):
            chunk = run[start : start + FIELDS_PER_SECTION]
            result.append(
                {
                    "type": "section",
                    "fields": [{"type": "mrkdwn", "text": _field_text(f)} for f in chunk],
                }
            )
        run.clear()

    for field in notice.fields:
        if field.short:
            run.append(field)
            continue
        flush()
        result.append({"type": "section", "text": {"type": "mrkdwn", "text": _field_text(field)}})
    flush()
    # <!date^…|fallback> shows the time in each reader's own time zone.
    fallback = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")
    elements = [
        {
            "type": "mrkdwn",
            "text": f"{FOOTER} · <!date^{ts}^{{date_short_pretty}} at {{time}}|{fallback}>",
        }
    ]
    if note is not None:
        elements.append({"type": "mrkdwn", "text": note})
    result.append({"type": "context", "elements": elements})
    return result

"""Discord webhook message bodies: a `Notice` as one embed, within Discord's documented limits.

Discord refuses a whole message (HTTP 400, code 50035) when any embed part is over its limit,
so every text is clipped here rather than trusted to be short: a long session id or e-mail
address must cost an ellipsis, not the notification.

Example:
    >>> from runtime.sdk import describe
    >>> from datetime import UTC, datetime
    >>> notice = describe("user.created", {"id": "u1", "username": "ann"}, include_details=False)
    >>> embed = notice_embed(notice, datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))
    >>> embed["color"], embed["fields"], embed["timestamp"]
    (3061373, [{'name': 'Username', 'value': 'ann', 'inline': True}], '2024-01-02T03:04:05+00:00')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from runtime.sdk import Notice, NoticeField

# Embed colours are RGB integers; these match the Slack palette the other plugins use.
COLOURS = {"good": 0x2EB67D, "warning": 0xECB22E, "danger": 0xE01E5A, "info": 0x36C5F0}
FOOTER = "StreamSpace"

# https://discord.com/developers/docs/resources/message#embed-object-embed-limits
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_COUNT_LIMIT = 25
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
EMBED_TOTAL_LIMIT = 6000
CONTENT_LIMIT = 2000
# Discord refuses empty field names and values; a zero-width space keeps the field.
BLANK = "\u200b"


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, an ellipsis marking the cut."""
    text = text if text.strip() else BLANK
    return text if len(text) <= limit else text[: limit - 1] + "…"


def embed_fields(fields: Iterable[NoticeField], budget: int) -> list[dict[str, Any]]:
    """Discord fields for `fields`: at most 25, each clipped, together within `budget`
    characters (what the 6000-character embed total leaves after title and footer)."""
    rendered: list[dict[str, Any]] = []
    for field in fields:
        if len(rendered) == FIELD_COUNT_LIMIT:
            break
        name = clip(field.title, FIELD_NAME_LIMIT)
        value = clip(field.value, FIELD_VALUE_LIMIT)
        if len(name) + len(value) > budget:
            break  # later fields would push the embed over Discord's total
        budget -= len(name) + len(value)
        rendered.append({"name": name, "value": value, "inline": field.short})
    return rendered


def embed(
    title: str,
    severity: str,
    fields: Iterable[NoticeField],
    moment: datetime,
    description: str | None = None,
) -> dict[str, Any]:
    """One embed: title, colour by severity, fields, the event's time and the footer."""
    body: dict[str, Any] = {"title": clip(title, TITLE_LIMIT)}
    if description:
        body["description"] = clip(description, DESCRIPTION_LIMIT)
    budget = EMBED_TOTAL_LIMIT - len(body["title"]) - len(body.get("description", ""))
    body["color"] = COLOURS.get(severity, COLOURS["info"])
    body["fields"] = embed_fields(fields, budget - len(FOOTER))
    body["timestamp"] = moment.isoformat()
    body["footer"] = {"text": FOOTER}
    return body


def notice_embed(notice: Notice, moment: datetime) -> dict[str, Any]:
    return embed(notice.text, notice.severity, notice.fields, moment)


def ping_embed(plugin: str, moment: datetime) -> dict[str, Any]:
    """The embed testPlugin sends: a real message, so the admin sees it arrive."""
    return embed(
        "✅ StreamSpace test message",
        "info",
        [NoticeField("Plugin", plugin), NoticeField("Sent at", moment.isoformat())],
        moment,
        description="StreamSpace notifications will appear in this channel.",
    )


def held_back_note(count: int) -> str | None:
    """The line that reports notifications the hourly rate limit held back (none: None)."""
    if count <= 0:
        return None
    if count == 1:
        return "(1 more notification was held back by the rate limit)"
    return f"({count} more notifications were held back by the rate limit)"


def webhook_message(
    embed_body: Mapping[str, Any],
    *,
    username: str | None,
    avatar_url: str | None,
    content: str | None = None,
) -> dict[str, Any]:
    """The execute-webhook body. `allowed_mentions` is locked down so that text from a
    payload ("@everyone", "<@123>") never pings anyone."""
    message: dict[str, Any] = {}
    if username:
        message["username"] = username
    if avatar_url:
        message["avatar_url"] = avatar_url
    if content:
        message["content"] = clip(content, CONTENT_LIMIT)
    message["embeds"] = [dict(embed_body)]
    message["allowed_mentions"] = {"parse": []}
    return message

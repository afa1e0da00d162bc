"""Teams message bodies built from a vendor-neutral `Notice`.

Two formats, because Teams has two kinds of incoming webhook:

- `adaptive`: what a Workflows "When a Teams webhook request is received" trigger expects, an
  Adaptive Card wrapped in the message envelope Teams documents (`type: message`, one
  attachment of content type `application/vnd.microsoft.card.adaptive`). Version 1.4, the
  highest that Teams renders on every client.
- `messagecard`: the legacy Office 365 connector card (`@type: MessageCard`), for channels that
  still use an Incoming Webhook connector.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from runtime.sdk import Notice

ADAPTIVE = "adaptive"
MESSAGE_CARD = "messagecard"
FORMATS = (ADAPTIVE, MESSAGE_CARD)

ADAPTIVE_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
ADAPTIVE_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
ADAPTIVE_VERSION = "1.4"
MESSAGE_CARD_CONTEXT = "https://schema.org/extensions"

# Adaptive Cards have named colours only; the theme picks the shade, so the card reads well in
# light, dark and high-contrast Teams alike.
ADAPTIVE_COLOURS = {"good": "good", "warning": "warning", "danger": "attention", "info": "accent"}
# MessageCard's themeColor is hex without '#'; the shades Slack's good/warning/danger use, and
# Microsoft blue for information.
THEME_COLOURS = {"good": "2EB886", "warning": "DAA038", "danger": "A30200", "info": "0078D7"}

FOOTER = "StreamSpace"


def held_back_note(count: int) -> str | None:
    """The sentence that reports notifications the rate limit held back; None when none were."""
    if count <= 0:
        return None
    noun = "notification was" if count == 1 else "notifications were"
    return f"({count} more {noun} held back by the rate limit)"


def _timestamp(at: datetime) -> str:
    # Adaptive Card DATE()/TIME() accept only this RFC 3339 form (UTC, no fractions).
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def adaptive_message(notice: Notice, *, held_back: int, at: datetime) -> dict[str, Any]:
    """The Workflows message: an Adaptive Card with a coloured title and a FactSet."""
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": notice.text,
            "weight": "bolder",
            "size": "medium",
            "color": ADAPTIVE_COLOURS.get(notice.severity, "default"),
            "wrap": True,
        }
    ]
    if notice.fields:
        body.append(
            {
                "type": "FactSet",
                "facts": [{"title": field.title, "value": field.value} for field in notice.fields],
            }
        )
    note = held_back_note(held_back)
    if note:
        body.append({"type": "TextBlock", "text": note, "wrap": True, "isSubtle": True})
    stamp = _timestamp(at)
    body.append(
        {
            "type": "TextBlock",
            # Teams renders DATE()/TIME() in each reader's own locale and time zone.
            "text": f"{FOOTER} · {{{{DATE({stamp}, SHORT)}}}} {{{{TIME({stamp})}}}}",
            "size": "small",
            "isSubtle": True,
            "wrap": True,
        }
    )
    card = {
        "$schema": ADAPTIVE_SCHEMA,
        "type": "AdaptiveCard",
        "version": ADAPTIVE_VERSION,
        # Shown where the card cannot be rendered (notifications, older clients).
        "fallbackText": notice.text if not note else f"{notice.text} {note}",
        "body": body,
        # Full width: a FactSet in the default narrow card wraps every value.
        "msteams": {"width": "Full"},
    }
    return {
        "type": "message",
        "attachments": [
            {"contentType": ADAPTIVE_CONTENT_TYPE, "contentUrl": None, "content": card}
        ],
    }


def message_card(notice: Notice, *, held_back: int, at: datetime) -> dict[str, Any]:
    """The legacy Office 365 connector card: theme colour, title and one section of facts."""
    section: dict[str, Any] = {
        "activityTitle": notice.title,
        "activitySubtitle": f"{FOOTER} · {at.astimezone(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        "facts": [{"name": field.title, "value": field.value} for field in notice.fields],
        # Facts are plain values: markdown off keeps a '_' or '*' in a name as typed.
        "markdown": False,
    }
    note = held_back_note(held_back)
    if note:
        section["text"] = note
    return {
        "@type": "MessageCard",
        "@context": MESSAGE_CARD_CONTEXT,
        "summary": notice.text,
        "themeColor": THEME_COLOURS.get(notice.severity, THEME_COLOURS["info"]),
        "title": notice.text,
        "sections": [section],
    }


def build(card_format: str, notice: Notice, *, held_back: int, at: datetime) -> dict[str, Any]:
    """The request body for `card_format` (one of FORMATS)."""
    if card_format == MESSAGE_CARD:
        return message_card(notice, held_back=held_back, at=at)
    return adaptive_message(notice, held_back=held_back, at=at)

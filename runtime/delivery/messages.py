"""What subscribers receive about a delivery and its event: enough to answer without a read.

An event's part is the same for every delivery of it, so a cached event keeps its own
(`CachedEvent.message`) and the dispatcher builds only the delivery's part per outcome.

Example:
    outcome_message(delivery, event)
    # {"delivery": {"id": 7, "status": "SUCCEEDED", ...}, "event": {"id": 3, "type": ...}}
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from runtime.delivery.records import DeliveryFacts, EventFacts


def _iso(moment: datetime | None, texts: dict[datetime, str] | None = None) -> str | None:
    if moment is None:
        return None
    if texts is None:
        return moment.isoformat()
    text = texts.get(moment)
    if text is None:
        text = texts[moment] = moment.isoformat()
    return text


def event_message(event: EventFacts) -> dict[str, Any]:
    """The event's part of an outcome message."""
    return {
        "id": event.id,
        "type": event.type,
        "idempotencyKey": event.idempotency_key,
        "occurredAt": event.occurred_at.isoformat(),
        "receivedAt": _iso(event.received_at),
    }


def delivery_message(
    delivery: DeliveryFacts, texts: dict[datetime, str] | None = None
) -> dict[str, Any]:
    """The delivery's part of an outcome message; `texts` keeps the ISO texts of the times a
    batch of messages shares, each made once (in UTC, as every time here is: an equal time
    in another zone has another text)."""
    created = _iso(delivery.created_at, texts)
    due = delivery.next_attempt_at
    return {
        "id": delivery.id,
        "eventId": delivery.event_id,
        "plugin": delivery.plugin,
        "hook": delivery.hook,
        "status": delivery.status,
        "attempts": delivery.attempts,
        # A first attempt is due when it was created: one text for both.
        "nextAttemptAt": created
        if due is not None and due == delivery.created_at
        else _iso(due, texts),
        "durationMs": delivery.duration_ms,
        "result": delivery.result,
        "error": delivery.error,
        "createdAt": created,
        "updatedAt": _iso(delivery.updated_at, texts),
    }


def outcome_message(delivery: DeliveryFacts, event: EventFacts) -> dict[str, Any]:
    """What subscribers receive about a delivery's outcome."""
    return {"delivery": delivery_message(delivery), "event": event_message(event)}

"""Outcome messages: what subscribers read of a delivery and its event, however it was built."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from models import Delivery, EventRow
from runtime.delivery.event_cache import CachedEvent
from runtime.delivery.messages import delivery_message, outcome_message
from tests.conftest import Database


async def stored(**delivery: object) -> tuple[Delivery, EventRow]:
    now = datetime.now(UTC)
    event = await EventRow.create(
        type="session.created", payload={"id": "s"}, idempotency_key="k", occurred_at=now
    )
    row = await Delivery.create(
        event_id=event.id, plugin="p", hook="h", next_attempt_at=now, **delivery
    )
    return await Delivery.get(id=row.id), await EventRow.get(id=event.id)


async def test_the_dispatchers_message_is_the_one_built_from_the_rows(db: Database) -> None:
    delivery, event = await stored(status="SUCCEEDED", attempts=1, result={"ok": True})
    cached = CachedEvent.of(event)
    built = {"delivery": delivery_message(delivery), "event": cached.message}
    assert built == outcome_message(delivery, event)
    assert built["event"] == {
        "id": event.id,
        "type": "session.created",
        "idempotencyKey": "k",
        "occurredAt": event.occurred_at.isoformat(),
        "receivedAt": event.received_at.isoformat(),
    }


async def test_a_first_attempt_is_due_when_it_was_created_and_a_retry_later(
    db: Database,
) -> None:
    delivery, _ = await stored()
    delivery.next_attempt_at = delivery.created_at
    first = delivery_message(delivery)
    assert first["nextAttemptAt"] == first["createdAt"] == delivery.created_at.isoformat()
    retry = delivery.created_at + timedelta(seconds=30)
    delivery.next_attempt_at = retry
    assert delivery_message(delivery)["nextAttemptAt"] == retry.isoformat()
    delivery.next_attempt_at = None  # type: ignore[assignment]
    assert delivery_message(delivery)["nextAttemptAt"] is None


async def test_a_batch_s_shared_update_time_is_written_as_its_text(db: Database) -> None:
    delivery, _ = await stored(status="SUCCEEDED", attempts=1)
    made = delivery_message(delivery)
    assert delivery_message(delivery, {}) == made
    shared = {delivery.updated_at: made["updatedAt"]}
    assert delivery_message(delivery, shared) == made
    assert delivery_message(delivery, {delivery.updated_at: "the batch's"})["updatedAt"] == (
        "the batch's"
    )


async def test_a_batch_makes_the_text_of_each_time_it_shares_once(db: Database) -> None:
    delivery, _ = await stored(status="SUCCEEDED", attempts=1)
    delivery.next_attempt_at = delivery.created_at + timedelta(seconds=5)
    texts: dict[datetime, str] = {}
    made = delivery_message(delivery, texts)
    assert made == delivery_message(delivery)
    assert texts == {
        moment: moment.isoformat()
        for moment in (delivery.created_at, delivery.next_attempt_at, delivery.updated_at)
    }
    texts[delivery.created_at] = "kept"
    assert delivery_message(delivery, texts)["createdAt"] == "kept"

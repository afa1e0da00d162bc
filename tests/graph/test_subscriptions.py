"""Subscriptions in-process: gaps in the broadcast and how eventOutcomes ends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from graph.context import Context, Services
from models import Delivery, EventRow
from runtime.core.auth import Role
from runtime.delivery.messages import outcome_message
from tests.conftest import Database, QueryCounter, needs_fast_paths
from tests.graph.conftest import schema


def admin_context(services: Services) -> Context:
    context = Context(services=services, request=None, response=None)
    context.authenticate(services.tokens.verify(services.tokens.issue(Role.ADMIN, "ops")))
    return context


async def test_event_outcomes_completes_when_the_final_outcome_fell_in_a_gap(
    db: Database, services: Services
) -> None:
    now = datetime.now(UTC)
    event = await EventRow.create(type="custom.job", payload={}, occurred_at=now)
    delivery = await Delivery.create(
        event_id=event.id, plugin="p", hook="on_event", next_attempt_at=now
    )
    query = f'subscription {{ eventOutcomes(eventId: "{event.id}") {{ status plugin }} }}'
    stream: Any = await schema.subscribe(query, context_value=admin_context(services))
    first = await anext(stream)
    assert first.data == {"eventOutcomes": {"status": "PENDING", "plugin": "p"}}
    # The outcome is written, but its message is lost while the broadcast link is down.
    await Delivery.filter(id=delivery.id).update(status="SUCCEEDED")
    services.host.hub._link_changed(False)
    services.host.hub._link_changed(True)
    results = [result async for result in stream]
    codes = [e.extensions["code"] for r in results for e in (r.errors or [])]
    assert codes == ["MISSED_MESSAGES"]
    assert results[-1].data == {"eventOutcomes": {"status": "SUCCEEDED", "plugin": "p"}}


async def test_a_lagging_subscriber_is_told_how_many_messages_it_missed(
    db: Database, services: Services
) -> None:
    query = "subscription { pluginStatus { plugin status } }"
    stream: Any = await schema.subscribe(query, context_value=admin_context(services))
    reader = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.1)  # the subscription is listening once its pump has started
    for index in range(400):
        await services.host.hub.publish(
            "plugin-status",
            {"plugin": f"p{index}", "status": "ACTIVE", "at": datetime.now(UTC).isoformat()},
        )
    first = await asyncio.wait_for(reader, 5)
    assert first.data is not None
    seen = []
    async with asyncio.timeout(5):
        while True:
            result = await anext(stream)
            seen.append(result)
            if result.errors:
                break
    notice = seen[-1].errors[0]
    assert notice.extensions["code"] == "MISSED_MESSAGES"
    assert notice.extensions["missed"] > 0
    await stream.aclose()


@needs_fast_paths
async def test_subscribers_of_one_operation_share_one_execution_per_message(
    db: Database, services: Services, sql_counter: QueryCounter
) -> None:
    now = datetime.now(UTC)
    event = await EventRow.create(type="custom.job", payload={}, occurred_at=now)
    delivery = await Delivery.create(
        event_id=event.id, plugin="p", hook="on_event", next_attempt_at=now, status="SUCCEEDED"
    )
    # delivery.event reads the database: once per message, however many subscribers.
    same = "subscription { pluginEvents { delivery { id event { type } } } }"
    other = "subscription { pluginEvents { delivery { status event { id } } } }"
    streams: list[Any] = [
        await schema.subscribe(query, context_value=admin_context(services))
        for query in [same] * 5 + [other]
    ]
    readers = [asyncio.ensure_future(anext(stream)) for stream in streams]
    await asyncio.sleep(0.1)  # every subscription is listening once its pump has started
    sql_counter.statements.clear()
    await services.host.hub.publish("deliveries", outcome_message(delivery, event))
    results = await asyncio.wait_for(asyncio.gather(*readers), 5)
    assert [r.data for r in results[:5]] == [
        {"pluginEvents": {"delivery": {"id": str(delivery.id), "event": {"type": "custom.job"}}}}
    ] * 5
    assert results[5].data == {
        "pluginEvents": {"delivery": {"status": "SUCCEEDED", "event": {"id": str(event.id)}}}
    }
    assert len(sql_counter.statements) == 2  # one per distinct operation
    for stream in streams:
        await stream.aclose()

"""Subscriptions in-process: gaps in the broadcast and how eventOutcomes ends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from graph.context import Context, Services
from graph.schema import schema
from models import Delivery, Event
from runtime.auth import Role
from tests.conftest import Database


def admin_context(services: Services) -> Context:
    context = Context(services=services, request=None, response=None)
    context.authenticate(services.tokens.verify(services.tokens.issue(Role.ADMIN, "ops")))
    return context


async def test_event_outcomes_completes_when_the_final_outcome_fell_in_a_gap(
    db: Database, services: Services
) -> None:
    now = datetime.now(UTC)
    event = await Event.create(type="custom.job", payload={}, occurred_at=now)
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

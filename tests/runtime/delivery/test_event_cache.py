"""The event cache: events the emitter stored are served without a read, misses in one query."""

from __future__ import annotations

from datetime import UTC, datetime

from models import EventRow
from runtime.delivery.event_cache import EventCache
from tests.conftest import Database, QueryCounter


async def stored(count: int) -> list[EventRow]:
    now = datetime.now(UTC)
    return [
        await EventRow.create(type="session.created", payload={"id": f"s{n}"}, occurred_at=now)
        for n in range(count)
    ]


async def test_events_added_are_served_without_a_query(
    db: Database, sql_counter: QueryCounter
) -> None:
    events = await stored(3)
    cache = EventCache()
    for event in events:
        cache.add(event)
    sql_counter.statements.clear()
    found = await cache.get_many(event.id for event in events)
    assert sql_counter.statements == []
    assert {event_id: cached.type for event_id, cached in found.items()} == {
        event.id: "session.created" for event in events
    }


async def test_missing_events_are_read_in_one_query_and_kept(
    db: Database, sql_counter: QueryCounter
) -> None:
    events = await stored(4)
    cache = EventCache()
    sql_counter.statements.clear()
    first = await cache.get_many([event.id for event in events] + [10**9])
    assert len(sql_counter.statements) == 1
    assert set(first) == {event.id for event in events}  # an id with no row is left out
    again = await cache.get_many(event.id for event in events)
    assert len(sql_counter.statements) == 1
    assert again[events[0].id].payload() == {"id": "s0"}


async def test_each_delivery_gets_its_own_payload(db: Database) -> None:
    (event,) = await stored(1)
    cache = EventCache()
    cache.add(event)
    found = (await cache.get_many([event.id]))[event.id]
    mine = found.payload()
    mine["id"] = "changed by one plugin"
    assert found.payload() == {"id": "s0"}


async def test_the_cache_keeps_at_most_its_size(db: Database) -> None:
    events = await stored(5)
    cache = EventCache(size=3)
    for event in events:
        cache.add(event)
    assert len(cache) == 3

"""Rows and the rows referring to them: one transaction, ids in order, all or nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiosqlite
import pytest
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models import Delivery, EventRow
from runtime.db._linked_insert import insert_linked
from tests.conftest import Database
from tests.runtime.db.public_aiosqlite import hide_private_api


def events(*keys: str | None) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [
        {
            "type": "session.created",
            "payload": {"n": n},
            "idempotency_key": key,
            "occurred_at": now,
            "received_at": now,
        }
        for n, key in enumerate(keys)
    ]


def deliveries(*links: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [
        {
            "event_id": link,
            "plugin": f"p{n}",
            "hook": "on_session_created",
            "status": "PENDING",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for n, link in enumerate(links)
    ]


async def test_children_name_the_ids_drawn_for_their_parents(db: Database) -> None:
    fast = db.fast_paths
    await insert_linked(EventRow, events(None), Delivery, [], link="event_id", one_trip=fast)
    event_ids, delivery_ids = await insert_linked(
        EventRow,
        events(None, None, None),
        Delivery,
        deliveries(2, 0, 0, 1),
        link="event_id",
        one_trip=fast,
    )
    stored = {e.id: e.payload["n"] for e in await EventRow.filter(id__in=event_ids)}
    assert [stored[i] for i in event_ids] == [0, 1, 2]
    rows = {d.id: d for d in await Delivery.filter(id__in=delivery_ids)}
    assert [(rows[i].plugin, rows[i].event_id) for i in delivery_ids] == [
        ("p0", event_ids[2]),
        ("p1", event_ids[0]),
        ("p2", event_ids[0]),
        ("p3", event_ids[1]),
    ]


async def test_a_refused_row_stores_nothing_and_leaves_the_connection_usable(
    db: Database,
) -> None:
    fast = db.fast_paths
    with pytest.raises(IntegrityError):
        await insert_linked(
            EventRow, events("k", "k"), Delivery, deliveries(0, 1), link="event_id", one_trip=fast
        )
    assert await EventRow.all().count() == 0
    assert await Delivery.all().count() == 0
    await insert_linked(
        EventRow, events("k"), Delivery, deliveries(0), link="event_id", one_trip=fast
    )
    assert await Delivery.all().count() == 1


async def test_on_sqlite_the_transaction_is_one_trip_to_the_database_thread(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    if db.backend != "sqlite":
        pytest.skip("aiosqlite's thread is SQLite's")
    trips: list[str] = []
    real = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append(getattr(fn, "__name__", repr(fn)))
        return await real(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    await insert_linked(
        EventRow, events(None, None), Delivery, deliveries(0, 1, 1), link="event_id"
    )
    assert len(trips) == 1


async def test_inside_a_transaction_it_goes_with_that_transaction(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with in_transaction():
            await insert_linked(EventRow, events(None), Delivery, deliveries(0), link="event_id")
            assert await Delivery.all().count() == 1
            raise RuntimeError("changed my mind")
    assert await EventRow.all().count() == 0


async def test_without_aiosqlites_private_api_sqlite_takes_the_ordinary_transaction(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    if db.backend != "sqlite":
        pytest.skip("aiosqlite is SQLite's")
    hide_private_api(monkeypatch)
    event_ids, delivery_ids = await insert_linked(
        EventRow, events(None, None), Delivery, deliveries(1, 0, 1), link="event_id"
    )
    stored = {e.id: e.payload["n"] for e in await EventRow.filter(id__in=event_ids)}
    assert [stored[i] for i in event_ids] == [0, 1]
    rows = {d.id: d.event_id for d in await Delivery.filter(id__in=delivery_ids)}
    assert [rows[i] for i in delivery_ids] == [event_ids[1], event_ids[0], event_ids[1]]

"""Multi-row inserts: ids in the order of the rows, every value stored as the ORM would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from models import Delivery, EventRow
from runtime.db._bulk_sql import insert_ids, insert_returning
from tests.conftest import Database, QueryCounter


async def test_insert_ids_answers_in_the_order_of_the_rows_in_one_statement(
    db: Database, sql_counter: QueryCounter
) -> None:
    now = datetime.now(UTC)
    (event,) = await insert_returning(
        EventRow,
        [
            {
                "type": "session.created",
                "payload": {"id": "s"},
                "occurred_at": now,
                "received_at": now,
            }
        ],
    )
    rows = [
        {
            "event_id": event.id,
            "plugin": f"p{n % 3}",
            "hook": "on_session_created",
            "status": "PENDING",
            "attempts": n % 2,
            "next_attempt_at": now + timedelta(seconds=n % 2),
            "created_at": now,
            "updated_at": now,
        }
        for n in range(50)
    ]
    sql_counter.statements.clear()
    ids = await insert_ids(Delivery, rows)
    assert len(sql_counter.statements) == 1
    stored = {d.id: d for d in await Delivery.filter(id__in=ids)}
    assert [(stored[i].plugin, stored[i].attempts) for i in ids] == [
        (row["plugin"], row["attempts"]) for row in rows
    ]
    assert [stored[i].next_attempt_at for i in ids] == [row["next_attempt_at"] for row in rows]


async def test_json_values_are_converted_one_by_one(db: Database) -> None:
    now = datetime.now(UTC)
    payloads = [{"id": "a"}, {"id": "b"}, {"id": "a"}]
    events = await insert_returning(
        EventRow,
        [
            {"type": "session.created", "payload": p, "occurred_at": now, "received_at": now}
            for p in payloads
        ],
    )
    assert [event.payload for event in events] == payloads
    assert [
        e.payload for e in await EventRow.filter(id__in=[e.id for e in events]).order_by("id")
    ] == payloads

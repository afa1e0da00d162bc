"""Claims: due deliveries taken under a lease; giving them back in bulk, only while ours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from models import Delivery, EventRow
from runtime.delivery.claims import claim, hand_back
from tests.conftest import Database, QueryCounter


async def pending(count: int, plugin: str = "p") -> list[Delivery]:
    now = datetime.now(UTC)
    event = await EventRow.create(type="session.created", payload={}, occurred_at=now)
    return [
        await Delivery.create(
            event_id=event.id, plugin=plugin, hook="h", next_attempt_at=now - timedelta(seconds=n)
        )
        for n in range(count)
    ]


async def test_a_claim_takes_the_oldest_due_deliveries_of_its_plugin(db: Database) -> None:
    rows = await pending(5)
    await pending(2, plugin="other")
    taken = await claim("p", 3, lease=60)
    oldest = sorted(rows, key=lambda row: row.next_attempt_at)[:3]
    assert sorted(d.id for d in taken) == sorted(row.id for row in oldest)
    assert {(d.plugin, d.attempts, d.status) for d in taken} == {("p", 1, "RUNNING")}
    assert await Delivery.filter(status="RUNNING").count() == 3


async def test_handing_back_makes_them_due_again_without_counting_the_attempt(
    db: Database, sql_counter: QueryCounter
) -> None:
    await pending(4)
    taken = await claim("p", 4, lease=60)
    sql_counter.statements.clear()
    await hand_back(taken)
    assert len(sql_counter.statements) == 1
    rows = await Delivery.filter(plugin="p")
    assert {(row.status, row.attempts, row.lease_expires_at) for row in rows} == {
        ("RETRYING", 0, None)
    }
    assert len(await claim("p", 10, lease=60)) == 4


async def test_a_delivery_another_process_took_over_is_not_handed_back(db: Database) -> None:
    await pending(2)
    ours, theirs = await claim("p", 2, lease=60)
    await Delivery.filter(id=theirs.id).update(attempts=theirs.attempts + 1)
    await hand_back([ours, theirs])
    assert (await Delivery.get(id=ours.id)).status == "RETRYING"
    taken_over = await Delivery.get(id=theirs.id)
    assert (taken_over.status, taken_over.attempts) == ("RUNNING", 2)


async def test_a_claim_gives_the_times_the_models_give(db: Database) -> None:
    now = datetime.now(UTC)
    event = await EventRow.create(type="session.created", payload={}, occurred_at=now)
    row = await Delivery.create(
        event_id=event.id, plugin="times", hook="h", next_attempt_at=now - timedelta(seconds=3)
    )
    (taken,) = await claim("times", 1, lease=60)
    stored = await Delivery.get(id=row.id)
    assert (taken.created_at, taken.next_attempt_at) == (stored.created_at, stored.next_attempt_at)
    for moment in (taken.created_at, taken.next_attempt_at):
        assert moment is not None and moment.utcoffset() == timedelta(0)

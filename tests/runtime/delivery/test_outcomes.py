"""Delivery outcomes: written in batches, only while the claim that produced them holds."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest
from tortoise.connection import get_connection

from models import Delivery, EventRow
from runtime.delivery.outcomes import STATEMENTS, OutcomeWriter, write_outcomes
from runtime.delivery.worker import claim
from tests.conftest import Database, QueryCounter


async def claimed(count: int, plugin: str = "p") -> list[Delivery]:
    event = await EventRow.create(type="session.created", payload={}, occurred_at=datetime.now(UTC))
    now = datetime.now(UTC)
    for _ in range(count):
        await Delivery.create(event_id=event.id, plugin=plugin, hook="h", next_attempt_at=now)
    return await claim(plugin, count, lease=60)


def succeeded(delivery: Delivery, result: object = None) -> Delivery:
    delivery.status, delivery.result, delivery.duration_ms = "SUCCEEDED", result, 1.5
    delivery.updated_at = datetime.now(UTC)
    return delivery


async def test_outcomes_ready_together_go_in_one_statement(
    db: Database, sql_counter: QueryCounter
) -> None:
    deliveries = await claimed(20)
    writer = OutcomeWriter()
    sql_counter.statements.clear()
    written = await asyncio.gather(*(writer.write(succeeded(d, {"n": d.id})) for d in deliveries))
    assert written == [True] * 20
    assert len(sql_counter.statements) == 1
    rows = await Delivery.filter(id__in=[d.id for d in deliveries]).order_by("id")
    assert {(r.status, r.lease_expires_at, r.duration_ms) for r in rows} == {
        ("SUCCEEDED", None, 1.5)
    }
    assert [r.result for r in rows] == [{"n": r.id} for r in rows]


async def test_a_final_outcome_keeps_the_time_the_delivery_was_due(db: Database) -> None:
    deliveries = await claimed(2)
    due = {d.id: d.next_attempt_at for d in deliveries}
    for delivery in deliveries:
        delivery.next_attempt_at = datetime.now(UTC) + timedelta(days=1)  # not a retry's
    await write_outcomes([succeeded(d) for d in deliveries])
    rows = await Delivery.filter(id__in=list(due))
    assert {r.id: r.next_attempt_at for r in rows} == due


async def test_an_outcome_whose_claim_was_taken_over_is_not_written(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    ours, theirs = await claimed(2)
    # Another process claimed `theirs` again after its lease ran out: one attempt more.
    await Delivery.filter(id=theirs.id).update(attempts=theirs.attempts + 1)
    with caplog.at_level(logging.WARNING, logger="runtime.delivery.outcomes"):
        written = await asyncio.gather(
            OutcomeWriter().write(succeeded(ours)), OutcomeWriter().write(succeeded(theirs))
        )
    assert written == [True, False]
    assert (await Delivery.get(id=theirs.id)).status == "RUNNING"
    assert "taken over" in caplog.text


async def test_a_retrying_outcome_keeps_its_error_and_next_attempt(db: Database) -> None:
    (delivery,) = await claimed(1)
    later = datetime(2030, 1, 1, tzinfo=UTC)
    delivery.status, delivery.error, delivery.next_attempt_at = "RETRYING", "boom", later
    delivery.updated_at = datetime.now(UTC)
    assert await write_outcomes([delivery]) == {delivery.id}
    row = await Delivery.get(id=delivery.id)
    assert (row.status, row.error, row.next_attempt_at, row.result) == (
        "RETRYING",
        "boom",
        later,
        None,
    )


async def test_a_failed_write_is_retried(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    (delivery,) = await claimed(1)
    failures = iter([ConnectionError("dropped")])
    real = write_outcomes

    async def flaky(deliveries: list[Delivery]) -> set[int]:
        if (failure := next(failures, None)) is not None:
            raise failure
        return await real(deliveries)

    monkeypatch.setattr("runtime.delivery.outcomes.write_outcomes", flaky)
    assert await OutcomeWriter().write(succeeded(delivery))
    assert (await Delivery.get(id=delivery.id)).status == "SUCCEEDED"


async def test_a_large_batch_is_one_statement_that_finds_each_row_by_its_id(
    db: Database, sql_counter: QueryCounter
) -> None:
    deliveries = await claimed(300)
    sql_counter.statements.clear()
    written = await write_outcomes([succeeded(d, {"n": d.id}) for d in deliveries])
    assert written == {d.id for d in deliveries}
    assert len(sql_counter.statements) == 1
    if db.backend == "sqlite":
        # The outcomes are scanned and each row found by its key, never the other way round
        # (a scan of the table per outcome).
        plan = await get_connection("default").execute_query_dict(
            "EXPLAIN QUERY PLAN " + STATEMENTS["sqlite"], ["[]"]
        )
        details = [row["detail"] for row in plan]
        assert any("USING INTEGER PRIMARY KEY" in detail for detail in details), details


async def test_a_retry_written_as_an_outcome_is_claimed_again_once_due(db: Database) -> None:
    (delivery,) = await claimed(1)
    delivery.status, delivery.error = "RETRYING", "503 from the vendor"
    delivery.next_attempt_at = datetime.now(UTC) - timedelta(seconds=1)
    delivery.updated_at = datetime.now(UTC)
    assert await write_outcomes([delivery]) == {delivery.id}
    (again,) = await claim("p", 10, lease=60)
    assert (again.id, again.attempts) == (delivery.id, 2)
    stored = await Delivery.get(id=delivery.id)
    assert stored.error == "503 from the vendor"


async def test_an_outcome_the_database_refuses_loses_only_its_result(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    deliveries = await claimed(4)
    real = write_outcomes

    async def refusing(batch: list[Delivery]) -> set[int]:
        if any(d.result == {"bad": True} for d in batch):
            raise ValueError("value refused")
        return await real(batch)

    monkeypatch.setattr("runtime.delivery.outcomes.write_outcomes", refusing)
    monkeypatch.setattr("runtime.delivery.outcomes.WRITE_TRIES", 1)
    results = [{"n": 0}, {"n": 1}, {"bad": True}, {"n": 3}]
    outcomes = [succeeded(d, r) for d, r in zip(deliveries, results, strict=True)]
    assert await OutcomeWriter().write_many(outcomes) == [True] * 4
    rows = {d.id: d for d in await Delivery.all()}
    assert [rows[d.id].result for d in deliveries] == [{"n": 0}, {"n": 1}, None, {"n": 3}]
    assert all(rows[d.id].status == "SUCCEEDED" for d in deliveries)
    assert rows[deliveries[2].id].error == "its outcome could not be stored: value refused"


async def test_a_batch_refused_while_the_database_is_out_of_reach_is_not_split(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    deliveries = await claimed(4)
    calls: list[int] = []

    async def unreachable(batch: list[Delivery]) -> set[int]:
        calls.append(len(batch))
        raise ConnectionError("dropped")

    async def no_answer() -> bool:
        return False

    monkeypatch.setattr("runtime.delivery.outcomes.write_outcomes", unreachable)
    monkeypatch.setattr("runtime.delivery.outcomes._answers", no_answer)
    monkeypatch.setattr("runtime.delivery.outcomes.WRITE_TRIES", 2)
    assert await OutcomeWriter().write_many([succeeded(d) for d in deliveries]) == [False] * 4
    assert calls == [4, 4]

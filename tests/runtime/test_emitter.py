"""Accepting events: a batch is one transaction of a constant number of statements."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from models import Delivery, Event
from runtime.emitter import EmitRequest
from runtime.host import PluginHost
from runtime.sdk import Plugin, PluginContext
from tests.conftest import Database, QueryCounter
from tests.runtime.hosting import running_host


class Quiet(Plugin):
    async def on_session_created(self, ctx: PluginContext, session: Mapping[str, Any]) -> None:
        return None


def session(n: int, **extra: Any) -> EmitRequest:
    return EmitRequest("session.created", {"id": f"s-{n}", "user": "ann"}, **extra)


async def statements_for(host: PluginHost, counter: QueryCounter, count: int) -> int:
    # Stop the workers first: their claims are not the emit's statements.
    for plugin in host.loaded.values():
        await plugin.worker.stop()
    counter.statements.clear()
    await host.emitter.emit_many([session(n) for n in range(count)])
    return len(counter.statements)


async def test_a_batch_costs_the_same_statements_as_one_event(
    db: Database, sql_counter: QueryCounter
) -> None:
    async with running_host({"a": Quiet, "b": Quiet}) as host:
        one = await statements_for(host, sql_counter, 1)
        hundred = await statements_for(host, sql_counter, 100)
    assert hundred == one


async def test_a_batch_keeps_its_order_and_each_event_its_deliveries(db: Database) -> None:
    async with running_host({"a": Quiet, "b": Quiet}) as host:
        results = await host.emitter.emit_many([session(n) for n in range(50)])
    assert [r.event.payload["id"] for r in results] == [f"s-{n}" for n in range(50)]
    assert [r.event.id for r in results] == sorted(r.event.id for r in results)
    for result in results:
        assert [(d.event_id, d.plugin) for d in result.deliveries] == [
            (result.event.id, "a"),
            (result.event.id, "b"),
        ]
        stored = await Delivery.filter(event_id=result.event.id).order_by("id")
        assert [d.id for d in stored] == [d.id for d in result.deliveries]


async def test_a_key_repeated_in_a_batch_or_from_before_is_one_event(db: Database) -> None:
    async with running_host({"a": Quiet}) as host:
        (earlier,) = await host.emitter.emit_many([session(0, idempotency_key="old")])
        results = await host.emitter.emit_many(
            [
                session(1, idempotency_key="new"),
                session(2, idempotency_key="old"),
                session(3, idempotency_key="new"),
                session(4),
            ]
        )
    assert [r.duplicate for r in results] == [False, True, True, False]
    assert results[1].event.id == earlier.event.id
    assert results[2].event.id == results[0].event.id
    assert [len(r.deliveries) for r in results] == [1, 1, 1, 1]
    assert await Event.all().count() == 3


async def test_concurrent_emits_share_one_transaction(
    db: Database, sql_counter: QueryCounter
) -> None:
    async with running_host({"a": Quiet}) as host:
        for plugin in host.loaded.values():
            await plugin.worker.stop()
        sql_counter.statements.clear()
        results = await asyncio.gather(*(host.emitter.emit(session(n)) for n in range(20)))
    inserts = [s for s in sql_counter.statements if s.lstrip().upper().startswith("INSERT")]
    assert len(inserts) == 2  # the events, then their deliveries
    assert sorted(r.event.payload["id"] for r in results) == sorted(f"s-{n}" for n in range(20))
    assert all(r.event.payload["id"] == f"s-{n}" for n, r in enumerate(results))
    assert all(len(r.deliveries) == 1 and not r.duplicate for r in results)


async def test_a_key_stored_elsewhere_meanwhile_answers_with_that_event(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = await Event.create(
        type="session.created",
        payload={"id": "elsewhere"},
        idempotency_key="race",
        occurred_at=datetime.now(UTC),
    )
    real_filter = Event.filter
    looked: list[bool] = []

    def stored_after_our_lookup(*args: Any, **kwargs: Any) -> Any:
        # Another replica stores the key between our lookup and our insert.
        if "idempotency_key__in" in kwargs and not looked:
            looked.append(True)
            return real_filter(id=-1)
        return real_filter(*args, **kwargs)

    monkeypatch.setattr(Event, "filter", stored_after_our_lookup)
    async with running_host({"a": Quiet}) as host:
        for plugin in host.loaded.values():
            await plugin.worker.stop()
        results = await host.emitter.emit_many(
            [session(1), session(2, idempotency_key="race"), session(3)]
        )
    assert looked
    assert [r.duplicate for r in results] == [False, True, False]
    assert results[1].event.id == elsewhere.id
    assert [r.event.payload["id"] for r in results] == ["s-1", "elsewhere", "s-3"]
    assert [len(r.deliveries) for r in results] == [1, 0, 1]
    assert await Event.all().count() == 3

"""Accepting events: a batch is one transaction of a constant number of statements, and new
deliveries go straight to a local worker with room for them, written claimed by it."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from models import Delivery, EventRow
from runtime.core.errors import BadUserInput, Conflict, Forbidden
from runtime.db import _linked_insert as linked_insert
from runtime.delivery import emitter
from runtime.delivery import worker as dispatcher
from runtime.delivery.claims import Claimed
from runtime.delivery.emitter import EmitRequest
from runtime.delivery.event_cache import CachedEvent
from runtime.delivery.event_types import SERVER, Origin
from runtime.hosting.host import PluginHost
from runtime.sdk import Plugin, PluginContext
from tests.conftest import Database, QueryCounter
from tests.runtime.db.public_aiosqlite import hide_private_api
from tests.runtime.hosts import all_final, running_host, until


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


async def test_an_emit_works_on_sqlite_without_aiosqlites_private_api(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    if db.backend != "sqlite":
        pytest.skip("aiosqlite is SQLite's")
    async with running_host({"a": Quiet}) as host:
        hide_private_api(monkeypatch)
        result = await host.emitter.emit(session(1))
        await until(lambda: all_final(result.event.id))
    stored = await Delivery.get(event_id=result.event.id)
    assert (stored.id, stored.plugin, stored.status) == (result.deliveries[0].id, "a", "SUCCEEDED")


@pytest.mark.parametrize("fast_paths", [True, False], ids=["fast paths", "no fast paths"])
async def test_on_sqlite_events_are_written_in_one_trip_unless_the_fast_paths_are_off(
    db: Database, monkeypatch: pytest.MonkeyPatch, fast_paths: bool
) -> None:
    if db.backend != "sqlite":
        pytest.skip("the one trip is to aiosqlite's thread")
    trips: list[object] = []
    one_trip = linked_insert._in_one_trip

    async def counted(*args: Any) -> Any:
        trips.append(args)
        return await one_trip(*args)

    monkeypatch.setattr(linked_insert, "_in_one_trip", counted)
    async with running_host({"a": Quiet}, fast_paths=fast_paths) as host:
        results = await host.emitter.emit_many([session(1), session(2)])
    assert len(trips) == (1 if fast_paths else 0)
    stored = await Delivery.filter(event_id__in=[r.event.id for r in results]).order_by("id")
    assert [(d.id, d.event_id) for d in stored] == [
        (r.deliveries[0].id, r.event.id) for r in results
    ]


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


async def test_each_event_answered_is_the_row_stored_though_never_read_back(
    db: Database,
) -> None:
    cet = timezone(timedelta(hours=1))
    given = [None, datetime(2026, 3, 1, 12, 30, tzinfo=cet), datetime(2026, 3, 1, 12, 30)]
    async with running_host({"a": Quiet}) as host:
        results = await host.emitter.emit_many(
            [session(n, occurred_at=at, idempotency_key=f"k{n}") for n, at in enumerate(given)]
        )
    for result in results:
        row = await EventRow.get(id=result.event.id)
        answered = result.event
        assert (answered.type, answered.payload, answered.idempotency_key) == (
            row.type,
            row.payload,
            row.idempotency_key,
        )
        # The same instants, and in UTC as the database gives them back.
        for moment, stored in (
            (answered.occurred_at, row.occurred_at),
            (answered.received_at, row.received_at),
        ):
            assert moment == stored
            assert moment.utcoffset() == timedelta(0)
            assert moment.isoformat() == stored.isoformat()
    assert results[1].event.occurred_at == datetime(2026, 3, 1, 11, 30, tzinfo=UTC)
    assert results[2].event.occurred_at == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)


async def test_a_key_repeated_in_a_batch_or_from_before_is_one_event(db: Database) -> None:
    async with running_host({"a": Quiet}) as host:
        (earlier,) = await host.emitter.emit_many([session(0, idempotency_key="old")])
        results = await host.emitter.emit_many(
            [
                session(1, idempotency_key="new"),
                session(0, idempotency_key="old"),
                session(1, idempotency_key="new"),
                session(4),
            ]
        )
    assert [r.duplicate for r in results] == [False, True, True, False]
    assert results[1].event.id == earlier.event.id
    assert results[2].event.id == results[0].event.id
    assert [len(r.deliveries) for r in results] == [1, 1, 1, 1]
    assert await EventRow.all().count() == 3


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
    elsewhere = await EventRow.create(
        type="session.created",
        payload={"id": "s-2", "user": "ann", "user_id": "ann", "userId": "ann"},
        idempotency_key="race",
        occurred_at=datetime.now(UTC),
    )
    real_filter = EventRow.filter
    looked: list[bool] = []

    def stored_after_our_lookup(*args: Any, **kwargs: Any) -> Any:
        # Another replica stores the key between our lookup and our insert.
        if "idempotency_key__in" in kwargs and not looked:
            looked.append(True)
            return real_filter(id=-1)
        return real_filter(*args, **kwargs)

    monkeypatch.setattr(EventRow, "filter", stored_after_our_lookup)
    async with running_host({"a": Quiet}) as host:
        for plugin in host.loaded.values():
            await plugin.worker.stop()
        results = await host.emitter.emit_many(
            [session(1), session(2, idempotency_key="race"), session(3)]
        )
    assert looked
    assert [r.duplicate for r in results] == [False, True, False]
    assert results[1].event.id == elsewhere.id
    assert [r.event.payload["id"] for r in results] == ["s-1", "s-2", "s-3"]
    assert [len(r.deliveries) for r in results] == [1, 0, 1]
    assert await EventRow.all().count() == 3


# -- deliveries written claimed by a local worker -----------------------------------------------


class Held(Plugin):
    """Its hook waits until the test lets it go."""

    release: asyncio.Event
    runs = 0

    async def on_session_created(self, ctx: PluginContext, session: Mapping[str, Any]) -> None:
        Held.runs += 1
        await Held.release.wait()


def takes_new_deliveries(host: PluginHost, plugin: str) -> bool:
    """Whether the plugin's worker runs new deliveries as they are written, at once."""
    reservation = host.reserve(plugin, 1)
    if reservation is None:
        return False
    reservation.cancel()
    return not reservation.behind


async def test_a_worker_with_room_runs_new_deliveries_written_claimed_without_claiming_them(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    Held.release, Held.runs = asyncio.Event(), 0
    claimed_ids: list[int] = []
    real_claim = dispatcher.claim

    async def watched_claim(plugin: str, limit: int, lease: float) -> Any:
        taken = await real_claim(plugin, limit, lease)
        claimed_ids.extend(delivery.id for delivery in taken)
        return taken

    monkeypatch.setattr(dispatcher, "claim", watched_claim)
    async with running_host({"held": Held}) as host:
        await until(lambda: takes_new_deliveries(host, "held"))
        result = await host.emitter.emit(session(1))
        (delivery,) = result.deliveries
        assert (delivery.status, delivery.attempts) == ("RUNNING", 1)
        await until(lambda: Held.runs == 1)
        # Claimed in the row as a claim would: a crash leaves it to its lease.
        row = await Delivery.get(id=delivery.id)
        lease = host.loaded["held"].worker.lease
        assert (row.status, row.attempts) == ("RUNNING", 1)
        assert row.lease_expires_at is not None
        left = (row.lease_expires_at - datetime.now(UTC)).total_seconds()
        assert lease - 5 < left <= lease
        Held.release.set()
        await until(lambda: all_final(result.event.id))
    row = await Delivery.get(id=delivery.id)
    assert (row.status, row.attempts, Held.runs) == ("SUCCEEDED", 1, 1)
    assert delivery.id not in claimed_ids


class CountedClaims:
    """Stands in for the dispatcher's claim: counts the claims, each answered after `delay`."""

    def __init__(self, delay: float = 0.0) -> None:
        self.count = 0
        self._delay = delay
        self._claim = dispatcher.claim

    async def __call__(self, plugin: str, limit: int, lease: float) -> Any:
        self.count += 1
        await asyncio.sleep(self._delay)
        return await self._claim(plugin, limit, lease)


async def due_elsewhere(host: PluginHost, plugin: str, session_id: str) -> EventRow:
    """A delivery due in the table, written elsewhere (a replica, a retry), and the notice."""
    now = datetime.now(UTC)
    event = await EventRow.create(
        type="session.created", payload={"id": session_id}, occurred_at=now
    )
    await Delivery.create(
        event_id=event.id, plugin=plugin, hook="on_session_created", next_attempt_at=now
    )
    host.loaded[plugin].worker.wake()
    return event


async def test_deliveries_written_claimed_leave_the_table_unread_until_the_next_poll(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    claims = CountedClaims()
    monkeypatch.setattr(dispatcher, "claim", claims)
    async with running_host({"a": Quiet}, poll_interval=60) as host:
        await until(lambda: takes_new_deliveries(host, "a"))
        await until(lambda: claims.count == 1)  # the start looks in the table once
        for n in range(20):
            result = await host.emitter.emit(session(n))
            assert [d.status for d in result.deliveries] == ["RUNNING"]
            await until(lambda r=result: all_final(r.event.id))
        # Runners finishing and deliveries handed over wake the worker, but nothing can be
        # due in the table: it is not read again before the poll.
        assert claims.count == 1


class Recorder(Plugin):
    """Notes the session of each delivery as its hook starts."""

    ran: list[str] = []

    async def on_session_created(self, ctx: PluginContext, session: Mapping[str, Any]) -> None:
        Recorder.ran.append(session["id"])


async def test_new_deliveries_run_after_older_ones_due_in_the_table(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker's claims wait until the test lets them go: the table stays unread meanwhile.
    gate = asyncio.Event()
    real_claim = dispatcher.claim

    async def held_claim(plugin: str, limit: int, lease: float) -> Any:
        await gate.wait()
        return await real_claim(plugin, limit, lease)

    Recorder.ran = []
    async with running_host({"a": Recorder}) as host:
        await until(lambda: takes_new_deliveries(host, "a"))
        monkeypatch.setattr(dispatcher, "claim", held_claim)
        older = await due_elsewhere(host, "a", "older")  # older than what follows
        result = await host.emitter.emit(session(1))
        # Written claimed by the worker, so never claimed again, and held back meanwhile.
        assert [(d.status, d.attempts) for d in result.deliveries] == [("RUNNING", 1)]
        await asyncio.sleep(0.1)
        assert Recorder.ran == []
        gate.set()
        await until(lambda: all_final(result.event.id))
        await until(lambda: all_final(older.id))
        assert Recorder.ran == ["older", "s-1"]
        # The claim found the table drained: new deliveries run as written again.
        await until(lambda: takes_new_deliveries(host, "a"))
    rows = await Delivery.all()
    assert {(row.status, row.attempts) for row in rows} == {("SUCCEEDED", 1)}


async def test_under_a_steady_flow_of_events_the_claims_end_once_the_table_is_drained(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    claims = CountedClaims(delay=0.02)  # events keep coming while the table answers
    async with running_host({"a": Quiet}, poll_interval=60) as host:
        await until(lambda: takes_new_deliveries(host, "a"))
        # Once its hooks have shown their pace, the worker holds some 500: room for them all.
        first = await host.emitter.emit(session(-1))
        await until(lambda: all_final(first.event.id))
        monkeypatch.setattr(dispatcher, "claim", claims)
        await due_elsewhere(host, "a", "older")
        results = []
        for n in range(40):
            results.append(await host.emitter.emit(session(n)))
            await asyncio.sleep(0.005)
        for result in results:
            await until(lambda r=result: all_final(r.event.id))
    # One claim took the older delivery; what came meanwhile was written claimed and waited
    # behind it, never due in the table, so nothing kept the worker claiming.
    assert claims.count == 1
    assert all(d.status == "RUNNING" for r in results for d in r.deliveries)


async def test_a_batch_beyond_the_room_leaves_the_rest_in_the_table_in_order(
    db: Database,
) -> None:
    async with running_host({"a": Quiet}, default_concurrency=2) as host:
        await until(lambda: takes_new_deliveries(host, "a"))
        results = await host.emitter.emit_many([session(n) for n in range(10)])
        statuses = [d.status for r in results for d in r.deliveries]
        assert statuses[:2] == ["RUNNING", "RUNNING"]
        assert set(statuses[2:]) == {"PENDING"}
        for result in results:
            await until(lambda r=result: all_final(r.event.id))
        rows = await Delivery.filter(event_id__in=[r.event.id for r in results])
    assert {(row.status, row.attempts) for row in rows} == {("SUCCEEDED", 1)}


async def test_a_failed_write_gives_the_reserved_room_back(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing_insert(*_: Any, **__: Any) -> tuple[list[int], list[int]]:
        raise ConnectionError("the database went away")

    async with running_host({"a": Quiet}, default_concurrency=3) as host:
        await until(lambda: takes_new_deliveries(host, "a"))
        monkeypatch.setattr(emitter, "insert_linked", failing_insert)
        with pytest.raises(ConnectionError):
            await host.emitter.emit(session(1))
        monkeypatch.undo()
        reservation = host.reserve("a", 10)
        assert reservation is not None and reservation.count == 3
        reservation.cancel()


async def test_deliveries_handed_to_a_stopping_worker_are_given_back_unrun(db: Database) -> None:
    async with running_host({"a": Quiet}) as host:
        await until(lambda: takes_new_deliveries(host, "a"))
        worker = host.loaded["a"].worker
        reservation = host.reserve("a", 1)
        assert reservation is not None
        event = await EventRow.create(
            type="session.created", payload={}, occurred_at=datetime.now(UTC)
        )
        row = await Delivery.create(
            event_id=event.id,
            plugin="a",
            hook="on_session_created",
            status="RUNNING",
            attempts=1,
            next_attempt_at=datetime.now(UTC),
        )
        await worker.stop()
        held = Claimed(row.id, event.id, "a", row.hook, 1, row.created_at, row.next_attempt_at)
        reservation.fill([(held, CachedEvent.of(event))])
        await until(lambda: Delivery.filter(id=row.id, status="RETRYING").exists())
        row = await Delivery.get(id=row.id)
        assert (row.status, row.attempts, row.lease_expires_at) == ("RETRYING", 0, None)


async def test_a_reservation_short_of_what_was_wanted_makes_the_next_ones_wait(
    db: Database,
) -> None:
    async with running_host({"a": Quiet}, default_concurrency=2) as host:
        await until(lambda: takes_new_deliveries(host, "a"))
        short = host.reserve("a", 10)
        assert short is not None and short.count == 2 and not short.behind
        short.cancel()
        # The 8 beyond the room are written due: whatever comes next runs after them.
        following = host.reserve("a", 1)
        assert following is not None and following.behind
        following.cancel()


async def test_a_refused_event_fails_alone_not_the_events_emitted_beside_it(
    db: Database,
) -> None:
    async with running_host({"a": Quiet}) as host:
        bad = EmitRequest("session.created", {"id": "x"}, idempotency_key="k" * 256)
        outcomes = await asyncio.gather(
            host.emitter.emit(session(1)),
            host.emitter.emit(bad),
            host.emitter.emit(session(2)),
            return_exceptions=True,
        )
    assert [type(outcome).__name__ for outcome in outcomes] == [
        "EmitResult",
        "BadUserInput",
        "EmitResult",
    ]
    assert "idempotencyKey is 256 characters, more than the limit of 255" in str(outcomes[1])
    assert await EventRow.all().count() == 2


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (EmitRequest("custom.x", {"a": {"b": ["x\x00"]}}), "payload.a.b.0"),
        (EmitRequest("custom.x", {}, idempotency_key="k\x00"), "idempotencyKey"),
    ],
    ids=["payload", "key"],
)
async def test_a_nul_that_no_database_could_store_is_refused_naming_where(
    db: Database, request_: EmitRequest, field: str
) -> None:
    async with running_host({"a": Quiet}) as host:
        with pytest.raises(BadUserInput) as refused:
            await host.emitter.emit(request_)
    assert [problem.path for problem in refused.value.fields] == [field]
    assert await EventRow.all().count() == 0


# -- idempotency keys name one event ------------------------------------------------------------


@pytest.mark.parametrize("key", ["", " ", "\t\n"], ids=["empty", "space", "whitespace"])
async def test_a_blank_idempotency_key_is_refused_and_swallows_nothing(
    db: Database, key: str
) -> None:
    async with running_host({"a": Quiet}) as host:
        for n in range(2):
            with pytest.raises(BadUserInput) as refused:
                await host.emitter.emit(session(n, idempotency_key=key))
            assert [problem.path for problem in refused.value.fields] == ["idempotencyKey"]
            assert "blank" in refused.value.message
        later = await host.emitter.emit(session(2))
    assert not later.duplicate
    assert await EventRow.all().count() == 1


@pytest.mark.parametrize(
    "reused",
    [
        session(1, idempotency_key="k"),
        EmitRequest("session.started", {"id": "s-0", "user": "ann"}, idempotency_key="k"),
        EmitRequest("session.created", {"id": "s-0", "user": "ann", "n": 1}, idempotency_key="k"),
    ],
    ids=["another-payload", "another-type", "a-key-more"],
)
async def test_a_key_reused_for_another_event_is_a_conflict_naming_the_first(
    db: Database, reused: EmitRequest
) -> None:
    async with running_host({"a": Quiet}) as host:
        first = await host.emitter.emit(session(0, idempotency_key="k"))
        with pytest.raises(Conflict) as refused:
            await host.emitter.emit(reused)
    assert refused.value.extensions["eventId"] == str(first.event.id)
    assert f"event {first.event.id}" in refused.value.message
    assert await EventRow.all().count() == 1
    assert await Delivery.all().count() == 1


@pytest.mark.parametrize(
    ("first", "again", "same"),
    [
        ({"id": "s-0", "user_id": "ann"}, {"id": "s-0", "userId": "ann"}, True),
        (
            {"id": "s-0", "n": 1, "at": [1.5, {"b": 2}]},
            {"at": [1.5, {"b": 2.0}], "id": "s-0", "n": 1.0},
            True,
        ),
        ({"id": "s-0", "ok": True}, {"id": "s-0", "ok": 1}, False),
        ({"id": "s-0", "tags": ["a", "b"]}, {"id": "s-0", "tags": ["b", "a"]}, False),
        ({"id": "s-0", "note": None}, {"id": "s-0"}, False),
    ],
    ids=["other-spelling", "numbers-by-value", "bool-is-not-1", "list-order", "null-is-a-key"],
)
async def test_a_repeat_is_judged_by_the_normalised_payload_as_stored(
    db: Database, first: dict[str, Any], again: dict[str, Any], same: bool
) -> None:
    async with running_host({"a": Quiet}) as host:
        stored = await host.emitter.emit(EmitRequest("session.created", first, "k"))
        if same:
            repeat = await host.emitter.emit(EmitRequest("session.created", again, "k"))
            assert repeat.duplicate and repeat.event.id == stored.event.id
        else:
            with pytest.raises(Conflict):
                await host.emitter.emit(EmitRequest("session.created", again, "k"))
    assert await EventRow.all().count() == 1


async def test_a_key_given_twice_in_one_batch_for_two_events_refuses_the_batch(
    db: Database,
) -> None:
    async with running_host({"a": Quiet}) as host:
        with pytest.raises(Conflict) as refused:
            await host.emitter.emit_many(
                [session(0), session(1, idempotency_key="k"), session(2, idempotency_key="k")]
            )
    assert "inputs.2.idempotencyKey is the key of inputs.1.idempotencyKey" in str(refused.value)
    assert refused.value.extensions["fields"][0]["path"] == "inputs.2.idempotencyKey"
    assert await EventRow.all().count() == 0


async def test_concurrent_emits_of_two_events_under_one_key_store_the_first_only(
    db: Database,
) -> None:
    async with running_host({"a": Quiet}) as host:
        for plugin in host.loaded.values():
            await plugin.worker.stop()
        outcomes = await asyncio.gather(
            host.emitter.emit(session(0, idempotency_key="k")),
            host.emitter.emit(session(1, idempotency_key="k")),
            host.emitter.emit(session(2)),
            return_exceptions=True,
        )
    assert [type(outcome).__name__ for outcome in outcomes] == [
        "EmitResult",
        "Conflict",
        "EmitResult",
    ]
    stored = sorted(str(e.payload["id"]) for e in await EventRow.all())
    assert stored == ["s-0", "s-2"]


async def test_another_event_stored_under_the_key_meanwhile_is_a_conflict_storing_nothing(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = await EventRow.create(
        type="session.created",
        payload={"id": "elsewhere"},
        idempotency_key="race",
        occurred_at=datetime.now(UTC),
    )
    real_filter = EventRow.filter
    looked: list[bool] = []

    def stored_after_our_lookup(*args: Any, **kwargs: Any) -> Any:
        if "idempotency_key__in" in kwargs and not looked:
            looked.append(True)
            return real_filter(id=-1)
        return real_filter(*args, **kwargs)

    monkeypatch.setattr(EventRow, "filter", stored_after_our_lookup)
    async with running_host({"a": Quiet}) as host:
        with pytest.raises(Conflict) as refused:
            await host.emitter.emit_many(
                [session(1), session(2, idempotency_key="race"), session(3)]
            )
    assert looked
    assert refused.value.extensions["eventId"] == str(elsewhere.id)
    assert await EventRow.all().count() == 1  # the caller's other events were not kept either


async def test_only_a_repeated_key_costs_a_comparison(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[str] = []
    real = emitter.same_event

    def counted(event_type: str, payload: Mapping[str, Any], event: Any) -> bool:
        compared.append(event_type)
        return real(event_type, payload, event)

    monkeypatch.setattr(emitter, "same_event", counted)
    async with running_host({"a": Quiet}) as host:
        await host.emitter.emit_many([session(n, idempotency_key=f"k{n}") for n in range(50)])
        assert compared == []
        await host.emitter.emit(session(7, idempotency_key="k7"))
    assert compared == ["session.created"]


# -- who may emit what --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event_type", ["plugin.installed", "plugin.error", "repository.sync.completed"]
)
async def test_the_servers_own_types_are_refused_from_the_platform(
    db: Database, event_type: str
) -> None:
    async with running_host({"a": Quiet}) as host:
        with pytest.raises(Forbidden) as refused:
            await host.emitter.emit(EmitRequest(event_type, {"name": "a"}))
        accepted = await host.emitter.emit(EmitRequest(event_type, {"name": "a"}, origin=SERVER))
    assert "reported by the server itself" in refused.value.message
    assert refused.value.extensions["fields"][0]["path"] == "type"
    assert (await EventRow.get(id=accepted.event.id)).type == event_type
    assert await EventRow.all().count() == 1


async def test_a_plugin_emits_only_under_its_own_name(db: Database) -> None:
    async with running_host({"a": Quiet, "b": Quiet}) as host:
        with pytest.raises(Forbidden) as refused:
            await host.emitter.emit(EmitRequest("b.done", {}, origin=Origin.of_plugin("a")))
        with pytest.raises(Forbidden):
            await host.emitter.emit(EmitRequest("custom.x", {}, origin=Origin.of_plugin("a")))
        own = await host.emitter.emit(EmitRequest("a.done", {}, origin=Origin.of_plugin("a")))
    assert "publishes only its own events" in refused.value.message
    assert [d.plugin for d in own.deliveries] == []  # Quiet takes no on_event
    assert await EventRow.all().count() == 1


# -- integers JSON keeps on every backend ---------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({"n": 123456789012345678901234567890}, "payload.n"),
        ({"a": [1, {"b": 2**64}]}, "payload.a.1.b"),
        ({"n": 2**63}, "payload.n"),
        ({"n": -(2**63) - 1}, "payload.n"),
    ],
    ids=["beyond-u64", "nested", "just-above", "just-below"],
)
async def test_an_integer_beyond_64_bits_is_refused_naming_where(
    db: Database, payload: dict[str, Any], where: str
) -> None:
    async with running_host({"a": Quiet}) as host:
        with pytest.raises(BadUserInput) as refused:
            await host.emitter.emit(EmitRequest("custom.x", payload))
        with pytest.raises(BadUserInput) as in_batch:
            await host.emitter.emit_many(
                [EmitRequest("custom.y", {}), EmitRequest("custom.x", payload)]
            )
    assert [problem.path for problem in refused.value.fields] == [where]
    assert "64-bit" in refused.value.message
    assert [problem.path for problem in in_batch.value.fields] == [f"inputs.1.{where}"]
    assert await EventRow.all().count() == 0


async def test_integers_at_the_64_bit_limits_are_stored_exactly(db: Database) -> None:
    payload = {"top": 2**63 - 1, "bottom": -(2**63), "digits": "123456789012345678901234567890"}
    async with running_host({"a": Quiet}) as host:
        result = await host.emitter.emit(EmitRequest("custom.x", payload))
    stored = await EventRow.get(id=result.event.id)
    assert stored.payload == payload
    assert type(stored.payload["top"]) is int

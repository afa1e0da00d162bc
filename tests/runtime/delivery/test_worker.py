"""The worker's claims: nothing it took stays RUNNING when it is stopped in the middle."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from models import Delivery, EventRow
from runtime.delivery import worker as dispatcher
from runtime.delivery.breaker import CircuitBreaker
from runtime.delivery.retries import RetryPolicy
from runtime.delivery.worker import HookPace, PluginWorker
from tests.conftest import Database
from tests.runtime.hosts import until


async def test_a_worker_stopped_while_claiming_hands_the_claim_back(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    event = await EventRow.create(type="session.created", payload={"id": "s"}, occurred_at=now)
    for _ in range(3):
        await Delivery.create(event_id=event.id, plugin="p", hook="h", next_attempt_at=now)
    claimed = asyncio.Event()
    real_claim = dispatcher.claim

    async def slow_claim(plugin: str, limit: int, lease: float) -> list[Delivery]:
        taken = await real_claim(plugin, limit, lease)  # committed ...
        claimed.set()
        await asyncio.sleep(0.5)  # ... and the answer comes back after the stop gave up
        return taken

    async def never_called(*_: Any) -> None:
        raise AssertionError("no hook may run")

    monkeypatch.setattr(dispatcher, "claim", slow_claim)
    worker = PluginWorker(
        "p",
        never_called,
        never_called,
        never_called,
        policy=RetryPolicy(),
        timeout=1,
        concurrency=4,
        poll_interval=60,
    )
    worker.start()
    await asyncio.wait_for(claimed.wait(), 5)
    assert await Delivery.filter(status="RUNNING").count() == 3
    await worker.stop(grace=0.05)
    rows = await Delivery.filter(event_id=event.id)
    assert {(row.status, row.attempts, row.lease_expires_at) for row in rows} == {
        ("RETRYING", 0, None)
    }


async def due(count: int, plugin: str = "p") -> list[Delivery]:
    now = datetime.now(UTC)
    event = await EventRow.create(type="session.created", payload={"id": "s"}, occurred_at=now)
    return [
        await Delivery.create(event_id=event.id, plugin=plugin, hook="h", next_attempt_at=now)
        for _ in range(count)
    ]


async def nothing(*_: Any) -> None:
    return None


def worker_for(call_hook: Any, publish: Any = nothing, **settings: Any) -> PluginWorker:
    options: dict[str, Any] = {
        "policy": RetryPolicy(),
        "timeout": 5,
        "concurrency": 2,
        "poll_interval": 0.05,
    }
    options.update(settings)
    return PluginWorker("p", call_hook, publish, nothing, **options)


async def test_a_worker_claims_ahead_of_fast_hooks_yet_runs_at_most_its_concurrency(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await due(200)
    limits: list[int] = []
    real_claim = dispatcher.claim

    async def counted_claim(plugin: str, limit: int, lease: float) -> Any:
        limits.append(limit)
        return await real_claim(plugin, limit, lease)

    running, most = 0, 0

    async def hook(*_: Any) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0)
        running -= 1

    monkeypatch.setattr(dispatcher, "claim", counted_claim)
    worker = worker_for(hook)
    worker.start()
    await until(lambda: _count_status("SUCCEEDED", 200))
    await worker.stop()
    assert most == 2
    assert max(limits) > 2  # once the hooks showed their pace
    assert len([limit for limit in limits if limit > 0]) < 100  # fewer claims than 2 at a time


async def _count_status(status: str, expected: int) -> bool:
    return await Delivery.filter(status=status).count() == expected


async def test_a_queued_delivery_whose_lease_would_run_out_is_given_back_unrun(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = await due(3)
    real_claim = dispatcher.claim
    claims = 0

    async def short_lease_first(plugin: str, limit: int, lease: float) -> Any:
        nonlocal claims
        taken = await real_claim(plugin, limit, lease)
        claims += bool(taken)
        if claims == 1:
            for delivery in taken:  # as if they had waited in the queue for most of it
                delivery.lease_until = time.monotonic() + 1
        return taken

    ran: list[str] = []

    async def hook(hook: str, payload: Any, event: Any) -> None:
        ran.append(event.attributes["deliveryId"])

    monkeypatch.setattr(dispatcher, "claim", short_lease_first)
    worker = worker_for(hook, concurrency=4)
    worker.start()
    await until(lambda: _count_status("SUCCEEDED", 3))
    await worker.stop()
    assert claims >= 2
    assert sorted(ran) == sorted(str(row.id) for row in rows)  # each ran once
    # The claim given back did not count: each succeeded at its first counted attempt.
    assert {row.attempts for row in await Delivery.all()} == {1}


async def test_stop_gives_back_queued_deliveries_unrun(db: Database) -> None:
    await due(5)
    started = asyncio.Event()
    calls = 0

    async def blocking(*_: Any) -> None:
        nonlocal calls
        calls += 1
        started.set()
        await asyncio.sleep(60)

    pace = HookPace()
    pace.record(0.0001)  # fast hooks: the worker claims all five ahead
    worker = worker_for(blocking, concurrency=1, pace=pace)
    worker.start()
    await asyncio.wait_for(started.wait(), 5)
    await worker.stop(grace=0.05)
    assert calls == 1
    rows = await Delivery.all()
    assert {(row.status, row.attempts, row.lease_expires_at) for row in rows} == {
        ("RETRYING", 0, None)
    }


async def test_a_breaker_that_opens_gives_the_queue_back(db: Database) -> None:
    await due(6)
    calls = 0

    async def failing(*_: Any) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("vendor down")

    pace = HookPace()
    pace.record(0.0001)
    worker = worker_for(
        failing,
        concurrency=1,
        pace=pace,
        breaker=CircuitBreaker(threshold=2, cooldown=60),
    )
    worker.start()
    await until(lambda: _count_status("RETRYING", 6))
    await worker.stop()
    assert calls == 2
    assert worker.breaker.open
    rows = await Delivery.all()
    assert sorted(row.attempts for row in rows) == [0, 0, 0, 0, 1, 1]


async def test_outcomes_recorded_together_are_published_together(db: Database) -> None:
    await due(12)
    batches: list[list[dict[str, Any]]] = []

    async def publish(messages: list[dict[str, Any]]) -> None:
        batches.append(messages)
        await asyncio.sleep(0.01)  # a round trip to the broadcast server

    pace = HookPace()
    pace.record(0.0001)
    worker = worker_for(nothing, publish, concurrency=4, pace=pace)
    worker.start()
    await until(lambda: _count_status("SUCCEEDED", 12))
    await worker.stop()
    assert max(len(batch) for batch in batches) > 1  # the hub overlaps their round trips
    assert sorted(m["delivery"]["id"] for batch in batches for m in batch) == sorted(
        d.id for d in await Delivery.all()
    )


async def test_runners_wait_for_outcomes_to_be_recorded_past_a_limit(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await due(10)
    monkeypatch.setattr(dispatcher, "MAX_UNRECORDED", 3)
    released = asyncio.Event()
    calls = 0

    async def hook(*_: Any) -> None:
        nonlocal calls
        calls += 1

    async def stuck_publish(messages: list[dict[str, Any]]) -> None:
        await released.wait()  # the broadcast server does not answer

    pace = HookPace()
    pace.record(0.0001)
    worker = worker_for(hook, stuck_publish, concurrency=1, pace=pace)
    worker.start()
    await until(lambda: calls >= 1)
    await asyncio.sleep(0.3)
    # One batch is being recorded (stuck publishing), at most the limit waits behind it.
    assert calls <= 1 + 3
    released.set()
    await until(lambda: _count_status("SUCCEEDED", 10))
    await worker.stop()
    assert calls == 10


async def test_hooks_that_never_wait_still_let_the_next_claim_start_before_the_queue_is_empty(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await due(300)
    queued_at_claim: list[int] = []
    real_claim = dispatcher.claim
    worker: PluginWorker

    async def watched_claim(plugin: str, limit: int, lease: float) -> Any:
        queued_at_claim.append(len(worker._queue))
        return await real_claim(plugin, limit, lease)

    def instant(*_: Any) -> Any:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future  # awaited, it never suspends

    monkeypatch.setattr(dispatcher, "claim", watched_claim)
    monkeypatch.setattr(dispatcher, "MAX_CLAIM", 100)
    pace = HookPace()
    pace.record(0.0001)
    worker = worker_for(instant, concurrency=1, pace=pace)
    worker.start()
    await until(lambda: _count_status("SUCCEEDED", 300))
    await worker.stop()
    assert any(queued > 0 for queued in queued_at_claim), queued_at_claim


async def test_a_retry_falling_due_wakes_its_worker_without_waiting_for_the_poll(
    db: Database,
) -> None:
    (row,) = await due(1)
    calls = 0

    async def fails_once(*_: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the vendor is down")

    worker = worker_for(fails_once, policy=RetryPolicy(backoff_base=0.05), poll_interval=60)
    worker.start()
    await until(lambda: Delivery.filter(id=row.id, status="SUCCEEDED").exists())
    await worker.stop()
    assert (await Delivery.get(id=row.id)).attempts == 2

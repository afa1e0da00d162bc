"""The worker's claims: nothing it took stays RUNNING when it is stopped in the middle."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from models import Delivery, Event
from runtime import dispatcher
from runtime.dispatcher import PluginWorker, RetryPolicy
from tests.conftest import Database


async def test_a_worker_stopped_while_claiming_hands_the_claim_back(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    event = await Event.create(type="session.created", payload={"id": "s"}, occurred_at=now)
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

"""Retention: old, finished events go with their deliveries; unfinished ones stay; old logs go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from models import Delivery, EventRow, PluginLog
from runtime.delivery.retention import prune
from tests.conftest import Database

OLD = datetime.now(UTC) - timedelta(days=40)


async def event(statuses: list[str], *, old: bool) -> EventRow:
    row = await EventRow.create(type="custom.x", payload={}, occurred_at=OLD)
    for index, status in enumerate(statuses):
        await Delivery.create(
            event_id=row.id,
            plugin=f"p{index}",
            hook="on_event",
            status=status,
            next_attempt_at=OLD,
        )
    if old:
        # received_at is auto_now_add: set the past afterwards.
        await EventRow.filter(id=row.id).update(received_at=OLD)
    return row


async def test_old_finished_events_are_pruned_with_their_deliveries(db: Database) -> None:
    finished = await event(["SUCCEEDED", "DEAD", "SKIPPED"], old=True)
    bare = await event([], old=True)
    unfinished = await event(["SUCCEEDED", "RETRYING"], old=True)
    running = await event(["RUNNING"], old=True)
    recent = await event(["SUCCEEDED"], old=False)
    events, _ = await prune(timedelta(days=30))
    assert events == 2
    remaining = set(await EventRow.all().values_list("id", flat=True))
    assert remaining == {unfinished.id, running.id, recent.id}
    assert not await Delivery.filter(event_id__in=[finished.id, bare.id]).exists()
    assert await Delivery.filter(event_id=unfinished.id).count() == 2


async def test_old_logs_are_pruned(db: Database) -> None:
    old = await PluginLog.create(plugin="p", level="INFO", message="old")
    await PluginLog.filter(id=old.id).update(created_at=OLD)
    await PluginLog.create(plugin="p", level="INFO", message="new")
    _, logs = await prune(timedelta(days=30))
    assert logs == 1
    assert [str(m) for m in await PluginLog.all().values_list("message", flat=True)] == ["new"]


async def test_nothing_old_means_nothing_pruned(db: Database) -> None:
    await event(["SUCCEEDED"], old=False)
    assert await prune(timedelta(days=30)) == (0, 0)

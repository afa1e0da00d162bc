"""Pruning old events (with their deliveries) and plugin logs in the background.

An event is pruned only once every one of its deliveries is final, so retention never drops work
that is still to be done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from tortoise.expressions import Subquery
from tortoise.transactions import in_transaction

from models import Delivery, EventRow, PluginLog
from runtime.sdk.outcomes import FINAL

log = logging.getLogger(__name__)


BATCH = 500


async def prune(older_than: timedelta) -> tuple[int, int]:
    """Delete events (with their deliveries) and logs older than `older_than`; return how many
    events and logs went.

    Deliveries are deleted explicitly rather than left to the foreign key's ON DELETE CASCADE,
    which SQLite only honours when the connection enabled foreign keys. Work goes in batches so
    that no statement holds a long lock.
    """
    cutoff = datetime.now(UTC) - older_than
    events = 0
    while True:
        unfinished = Delivery.exclude(status__in=list(FINAL)).values("event_id")
        ids = list(
            await EventRow.filter(received_at__lt=cutoff)
            .exclude(id__in=Subquery(unfinished))
            .order_by("id")
            .limit(BATCH)
            .values_list("id", flat=True)
        )
        if not ids:
            break
        async with in_transaction():
            # A delivery that became unfinished meanwhile (a redelivery) keeps its event.
            busy = set(
                await Delivery.filter(event_id__in=ids)
                .exclude(status__in=list(FINAL))
                .values_list("event_id", flat=True)
            )
            doomed = [event_id for event_id in ids if event_id not in busy]
            await Delivery.filter(event_id__in=doomed).delete()
            events += await EventRow.filter(id__in=doomed).delete()
        if len(ids) < BATCH:
            break
    logs = await PluginLog.filter(created_at__lt=cutoff).delete()
    return events, logs


class Retention:
    """Runs `prune` every `interval` seconds."""

    def __init__(self, keep: timedelta, interval: float = 3600.0) -> None:
        self._keep = keep
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                events, logs = await prune(self._keep)
                if events or logs:
                    log.info("pruned old rows", extra={"events": events, "logs": logs})
            except Exception:
                log.exception("pruning old events and logs failed")
            await asyncio.sleep(self._interval)

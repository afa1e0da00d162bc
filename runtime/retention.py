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

from models import Delivery, Event, PluginLog
from runtime.dispatcher import FINAL

log = logging.getLogger(__name__)


async def prune(older_than: timedelta) -> tuple[int, int]:
    """Delete events and logs older than `older_than`; return how many of each."""
    cutoff = datetime.now(UTC) - older_than
    unfinished = Delivery.exclude(status__in=list(FINAL)).values("event_id")
    events = (
        await Event.filter(received_at__lt=cutoff).exclude(id__in=Subquery(unfinished)).delete()
    )
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

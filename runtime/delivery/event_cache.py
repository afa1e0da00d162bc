"""Recently stored events, kept for the workers that deliver them.

Every plugin that wants an event runs it from the same row, and in a process that accepted
the event itself the workers need not read it back at all. Events never change once stored,
so a cached copy is never stale; the cache only bounds how many it keeps. The payload is kept
as JSON and parsed for each delivery, so a plugin that changes its payload changes nobody
else's.

Example:
    events = EventCache()
    events.add(stored_event)                   # the emitter, once the row is committed
    found = await events.get_many({12, 13})    # {12: CachedEvent, 13: CachedEvent}, reads misses
    found[12].payload()                        # a fresh dict each call
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from models import EventRow
from runtime.delivery.messages import event_message
from runtime.delivery.records import EventRecord

DEFAULT_SIZE = 20_000


@dataclass(frozen=True, slots=True)
class CachedEvent:
    """What running a delivery and reporting its outcome need of its event."""

    id: int
    type: str
    payload_json: bytes
    idempotency_key: str | None
    occurred_at: datetime
    received_at: datetime | None
    # Its part of every outcome message, built once for all its deliveries; read only.
    message: dict[str, Any]

    @classmethod
    def of(cls, event: EventRecord) -> CachedEvent:
        return cls(
            id=event.id,
            type=event.type,
            payload_json=orjson.dumps(event.payload),
            idempotency_key=event.idempotency_key,
            occurred_at=event.occurred_at,
            received_at=event.received_at,
            message=event_message(event),
        )

    def payload(self) -> dict[str, Any]:
        parsed: dict[str, Any] = orjson.loads(self.payload_json)
        return parsed


class EventCache:
    """At most `size` events by id, the least recently stored or read dropped first."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self._size = size
        self._events: OrderedDict[int, CachedEvent] = OrderedDict()

    def __len__(self) -> int:
        return len(self._events)

    def add(self, event: EventRecord) -> CachedEvent:
        return self._keep(CachedEvent.of(event))

    async def get_many(self, ids: Iterable[int]) -> dict[int, CachedEvent]:
        """These events by id; the ones not kept are read in one query. An id with no row
        (the event was deleted meanwhile) is left out."""
        found: dict[int, CachedEvent] = {}
        missing: list[int] = []
        for event_id in set(ids):
            cached = self._events.get(event_id)
            if cached is None:
                missing.append(event_id)
            else:
                self._events.move_to_end(event_id)
                found[event_id] = cached
        if missing:
            for event in await EventRow.filter(id__in=missing):
                found[event.id] = self._keep(CachedEvent.of(event))
        return found

    def _keep(self, event: CachedEvent) -> CachedEvent:
        self._events[event.id] = event
        self._events.move_to_end(event.id)
        while len(self._events) > self._size:
            self._events.popitem(last=False)
        return event

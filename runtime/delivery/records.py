"""What the runtime's layers read of a delivery and of an event, whatever holds them.

A stored row (the ORM model), a claim the dispatcher holds and a delivery the emitter has
just written all answer these, so outcome messages and API results are built the same way
from each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from runtime.sdk.outcomes import DeliveryStatus


class DeliveryFacts(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def event_id(self) -> int: ...
    @property
    def plugin(self) -> str: ...
    @property
    def hook(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def attempts(self) -> int: ...
    @property
    def next_attempt_at(self) -> datetime | None: ...
    @property
    def duration_ms(self) -> float | None: ...
    @property
    def result(self) -> Any: ...
    @property
    def error(self) -> str | None: ...
    @property
    def created_at(self) -> datetime | None: ...
    @property
    def updated_at(self) -> datetime | None: ...


class EventFacts(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def type(self) -> str: ...
    @property
    def idempotency_key(self) -> str | None: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def received_at(self) -> datetime | None: ...


class EventRecord(EventFacts, Protocol):
    """An event with its payload: a stored row, or one just written."""

    @property
    def payload(self) -> dict[str, Any]: ...


@dataclass(slots=True)
class StoredEvent:
    """An event just written: built from the values written, not read back. Not to be
    changed (not frozen only because a frozen dataclass takes several times as long to make,
    and an emit makes one per event)."""

    id: int
    type: str
    payload: dict[str, Any]
    idempotency_key: str | None
    occurred_at: datetime
    received_at: datetime


@dataclass(slots=True)
class NewDelivery:
    """A delivery just written (PENDING, or RUNNING when written claimed by a local worker):
    built from the values written, not read back. Not to be changed (as StoredEvent)."""

    id: int
    event_id: int
    plugin: str
    hook: str
    next_attempt_at: datetime
    created_at: datetime
    status: str = DeliveryStatus.PENDING
    attempts: int = 0
    duration_ms: float | None = None
    result: Any = None
    error: str | None = None

    @property
    def updated_at(self) -> datetime:
        return self.created_at

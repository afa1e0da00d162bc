"""Events, deliveries, outcomes, plugin logs and status changes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeAlias, cast

import strawberry
from strawberry.scalars import JSON

from graph._fast.leaf_inputs import leaf_input
from graph.context import Info
from graph.types.common import PageInfo, field
from graph.types.installed import PluginStatus
from models import Delivery as DeliveryRow
from models import EventRow
from models import PluginLog as PluginLogRow
from runtime.delivery.records import DeliveryFacts, EventRecord
from runtime.sdk import context, outcomes

# The runtime's enums, exported to GraphQL as they are.
DeliveryStatus: TypeAlias = outcomes.DeliveryStatus
strawberry.enum(DeliveryStatus)
LogLevel: TypeAlias = context.LogLevel
strawberry.enum(LogLevel)
# Deliveries waiting for a run, whose next_attempt_at says when.
DUE = frozenset({DeliveryStatus.PENDING, DeliveryStatus.RETRYING})


def _moment(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


@strawberry.type
class Delivery:
    """One event handed to one plugin, with its latest outcome."""

    id: strawberry.ID
    event_id: strawberry.ID
    plugin: str
    hook: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    duration_ms: float | None
    result: JSON | None
    error: str | None
    created_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def from_row(cls, row: DeliveryFacts) -> Delivery:
        return cls(
            id=strawberry.ID(str(row.id)),
            event_id=strawberry.ID(str(row.event_id)),
            plugin=row.plugin,
            hook=row.hook,
            status=DeliveryStatus(row.status),
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at if row.status in DUE else None,
            duration_ms=row.duration_ms,
            result=row.result,
            error=row.error,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> Delivery:
        return cls(
            id=strawberry.ID(str(data["id"])),
            event_id=strawberry.ID(str(data["eventId"])),
            plugin=data["plugin"],
            hook=data["hook"],
            status=DeliveryStatus(data["status"]),
            attempts=data["attempts"],
            next_attempt_at=_moment(data.get("nextAttemptAt")) if data["status"] in DUE else None,
            duration_ms=data.get("durationMs"),
            result=data.get("result"),
            error=data.get("error"),
            created_at=_moment(data.get("createdAt")),
            updated_at=_moment(data.get("updatedAt")),
        )

    @strawberry.field
    async def event(self) -> Event | None:
        row = await EventRow.get_or_none(id=int(self.event_id))
        return Event.from_row(row) if row else None


@strawberry.type
class Event:
    """Something that happened, as emitEvent accepted it."""

    id: strawberry.ID
    type: str
    idempotency_key: str | None
    occurred_at: datetime
    received_at: datetime | None
    _payload: strawberry.Private[dict[str, Any] | None] = None

    @classmethod
    def from_row(cls, row: EventRecord) -> Event:
        return cls(
            id=strawberry.ID(str(row.id)),
            type=row.type,
            idempotency_key=row.idempotency_key,
            occurred_at=row.occurred_at,
            received_at=row.received_at,
            _payload=row.payload,
        )

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> Event:
        occurred = _moment(data["occurredAt"])
        assert occurred is not None
        return cls(
            id=strawberry.ID(str(data["id"])),
            type=data["type"],
            idempotency_key=data.get("idempotencyKey"),
            occurred_at=occurred,
            received_at=_moment(data.get("receivedAt")),
        )

    @field(description="The payload, normalised (every accepted key spelling present).")
    async def payload(self, info: Info) -> JSON:
        if self._payload is None:
            # Stored events never change: the host's cache of recent ones (the emitter fills
            # it) answers without a query, so the executions of outcomes that queue up for
            # subscribers finish together; a miss reads the row.
            event_id = int(self.id)
            found = await info.context.services.host.events.get_many((event_id,))
            self._payload = found[event_id].payload() if event_id in found else {}
        return cast(JSON, self._payload)

    @strawberry.field
    async def deliveries(self) -> list[Delivery]:
        rows = await DeliveryRow.filter(event_id=int(self.id)).order_by("id")
        return [Delivery.from_row(row) for row in rows]


@strawberry.type
class EventEdge:
    cursor: str
    node: Event


@strawberry.type
class EventConnection:
    edges: list[EventEdge]
    page_info: PageInfo


@strawberry.type
class DeliveryEdge:
    cursor: str
    node: Delivery


@strawberry.type
class DeliveryConnection:
    edges: list[DeliveryEdge]
    page_info: PageInfo


@strawberry.type
class PluginLogEntry:
    id: strawberry.ID | None
    plugin: str
    level: LogLevel
    message: str
    data: JSON | None
    at: datetime

    @classmethod
    def from_row(cls, row: PluginLogRow) -> PluginLogEntry:
        return cls(
            id=strawberry.ID(str(row.id)),
            plugin=row.plugin,
            level=LogLevel(row.level),
            message=row.message,
            data=row.data,
            at=row.created_at,
        )

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> PluginLogEntry:
        at = _moment(data["at"])
        assert at is not None
        return cls(
            id=None,
            plugin=data["plugin"],
            level=LogLevel(data["level"]),
            message=data["message"],
            data=data.get("data"),
            at=at,
        )


@strawberry.type
class PluginLogEdge:
    cursor: str
    node: PluginLogEntry


@strawberry.type
class PluginLogConnection:
    edges: list[PluginLogEdge]
    page_info: PageInfo


@strawberry.type
class DeliveryOutcome:
    """A delivery's state as it changed; streamed by pluginEvents and eventOutcomes."""

    delivery: Delivery
    event: Event
    plugin: str
    status: DeliveryStatus
    at: datetime

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> DeliveryOutcome:
        delivery = Delivery.from_message(data["delivery"])
        return cls(
            delivery=delivery,
            event=Event.from_message(data["event"]),
            plugin=delivery.plugin,
            status=delivery.status,
            at=delivery.updated_at or datetime.now(),
        )


@strawberry.type
class PluginStatusChange:
    """A plugin's status as it changed on one replica (`replica`)."""

    plugin: str
    status: PluginStatus
    previous_status: PluginStatus | None
    error: str | None
    at: datetime
    replica: str | None
    message: str | None = strawberry.field(
        default=None, description="Progress while LOADING, e.g. of downloading the code."
    )


@strawberry.type
class EmitEventResult:
    event: Event
    duplicate: bool
    deliveries: list[Delivery]


@leaf_input
@strawberry.input
class EmitEventInput:
    type: str
    payload: JSON
    idempotency_key: str | None = None
    occurred_at: datetime | None = None
    wait: bool = False
    wait_timeout_ms: int = 5000


@strawberry.input
class EventFilter:
    type: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@strawberry.input
class DeliveryFilter:
    plugin: str | None = None
    event_type: str | None = None
    event_id: strawberry.ID | None = None
    status: DeliveryStatus | None = None
    since: datetime | None = None
    until: datetime | None = None


@strawberry.input
class PluginEventsFilter:
    plugin: str | None = None
    event_type: str | None = None
    status: DeliveryStatus | None = None


@strawberry.type
class PluginTestResult:
    ok: bool
    message: str | None
    result: JSON | None


@strawberry.type
class UIExtension:
    plugin: str
    slot: str
    component: str
    title: str | None
    props: JSON

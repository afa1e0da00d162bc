"""Subscriptions: plugin status, delivery outcomes and plugin logs, live.

Each reads from the process's fan-out hub through a bounded buffer. A subscriber that fell
behind receives, in place of what it missed, one result with `data: null` and an error whose
code is MISSED_MESSAGES and whose `missed` says how many; the subscription goes on.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from datetime import datetime
from typing import Any, Protocol, TypeVar

import strawberry
from graphql import GraphQLError

from graph._fast.fanout import direct_delivery
from graph._fast.shared_results import shared_root
from graph.context import Info
from graph.permissions import IsAdmin
from graph.types.common import parse_id, subscription
from graph.types.events import (
    DeliveryOutcome,
    LogLevel,
    PluginEventsFilter,
    PluginLogEntry,
    PluginStatusChange,
)
from graph.types.installed import PluginStatus
from models import Delivery as DeliveryRow
from models import EventRow
from runtime.broadcast.hub import Message
from runtime.core.errors import NotFound
from runtime.delivery.emitter import DELIVERY_CHANNEL
from runtime.delivery.messages import outcome_message
from runtime.hosting.host import LOG_CHANNEL, STATUS_CHANNEL
from runtime.sdk.outcomes import FINAL

LEVEL_ORDER = list(LogLevel)
T = TypeVar("T")


def missed_notice(count: int) -> GraphQLError:
    return GraphQLError(
        f"{count} message(s) were missed: this subscriber fell behind or the link was down",
        extensions={"code": "MISSED_MESSAGES", "missed": count},
    )


async def _stream(
    info: Info,
    channel: str,
    keep: Callable[[dict[str, Any]], bool],
    convert: Callable[[dict[str, Any]], Any],
) -> AsyncGenerator[Message, None]:
    """The channel's messages that `keep` keeps, and gap notices; while this waits, messages
    may go straight to a WebSocket subscriber instead (graph/_fast/fanout.py)."""
    async with info.context.services.host.hub.subscribe(channel) as inbox:
        direct = direct_delivery(info, keep, convert) if _fast(info) else None
        if direct is not None:
            inbox.deliver_directly(direct.deliver, direct.prepare)
        async for message in inbox:
            if message.data is None or keep(message.data):
                yield message


def _fast(info: Info) -> bool:
    return info.context.services.settings.fast_paths


class RootOf(Protocol):
    """Makes the root object of a hub message with `convert`."""

    def __call__(self, data: dict[str, Any], convert: Callable[[dict[str, Any]], T]) -> T: ...


def _root(info: Info) -> RootOf:
    """How a message becomes its root: shared by every subscriber (graph/_fast/shared_results.py),
    or, with the fast paths off, converted for each."""
    return shared_root if _fast(info) else _converted


def _converted(data: dict[str, Any], convert: Callable[[dict[str, Any]], T]) -> T:
    return convert(data)


def _status_change(data: dict[str, Any]) -> PluginStatusChange:
    previous = data.get("previousStatus")
    return PluginStatusChange(
        plugin=data["plugin"],
        status=PluginStatus(data["status"]),
        previous_status=PluginStatus(previous) if previous else None,
        error=data.get("error"),
        at=datetime.fromisoformat(data["at"]),
        replica=data.get("replica"),
        message=data.get("message"),
    )


@strawberry.type
class Subscription:
    @subscription(permission_classes=[IsAdmin])
    async def plugin_status(
        self, info: Info, plugin: str | None = None
    ) -> AsyncGenerator[PluginStatusChange, None]:
        def keep(data: dict[str, Any]) -> bool:
            return plugin in (None, data["plugin"])

        root = _root(info)
        async for message in _stream(info, STATUS_CHANNEL, keep, _status_change):
            if message.data is None:
                yield missed_notice(message.missed)  # type: ignore[misc]
                continue
            yield root(message.data, _status_change)

    @subscription(permission_classes=[IsAdmin])
    async def plugin_events(
        self, info: Info, filter: PluginEventsFilter | None = None
    ) -> AsyncGenerator[DeliveryOutcome, None]:
        given = filter or PluginEventsFilter()
        # Asked for every message and subscriber: the enum's value read once.
        status = None if given.status is None else given.status.value

        def keep(data: dict[str, Any]) -> bool:
            delivery, event = data["delivery"], data["event"]
            return (
                given.plugin in (None, delivery["plugin"])
                and given.event_type in (None, event["type"])
                and status in (None, delivery["status"])
            )

        root = _root(info)
        async for message in _stream(info, DELIVERY_CHANNEL, keep, DeliveryOutcome.from_message):
            if message.data is None:
                yield missed_notice(message.missed)  # type: ignore[misc]
                continue
            yield root(message.data, DeliveryOutcome.from_message)

    @subscription(
        permission_classes=[IsAdmin],
        description="Outcomes of one event's deliveries; completes when all are final.",
    )
    async def event_outcomes(
        self, info: Info, event_id: strawberry.ID
    ) -> AsyncGenerator[DeliveryOutcome, None]:
        wanted = parse_id(event_id, "eventId")
        root = _root(info)
        async with info.context.services.host.hub.subscribe(DELIVERY_CHANNEL) as inbox:
            # Subscribed first, then read: an outcome cannot fall between the two.
            event = await EventRow.get_or_none(id=wanted)
            if event is None:
                raise NotFound(f"event {wanted} does not exist")
            rows = await DeliveryRow.filter(event_id=wanted).order_by("id")
            for row in rows:
                yield DeliveryOutcome.from_message(outcome_message(row, event))
            open_ids = {row.id for row in rows if row.status not in FINAL}
            if not open_ids:
                return
            async for message in inbox:
                if message.data is None:
                    yield missed_notice(message.missed)  # type: ignore[misc]
                    # A final outcome may be among what was missed: the rows still know it.
                    for row in await DeliveryRow.filter(
                        id__in=list(open_ids), status__in=list(FINAL)
                    ):
                        yield DeliveryOutcome.from_message(outcome_message(row, event))
                        open_ids.discard(row.id)
                    if not open_ids:
                        return
                    continue
                delivery = message.data["delivery"]
                if delivery["eventId"] != wanted:
                    continue
                yield root(message.data, DeliveryOutcome.from_message)
                if delivery["status"] in FINAL:
                    open_ids.discard(delivery["id"])
                if not open_ids:
                    return

    @subscription(permission_classes=[IsAdmin])
    async def plugin_logs(
        self, info: Info, plugin: str | None = None, level: LogLevel | None = None
    ) -> AsyncGenerator[PluginLogEntry, None]:
        allowed = set(LEVEL_ORDER[LEVEL_ORDER.index(level) :]) if level else set(LEVEL_ORDER)

        def keep(data: dict[str, Any]) -> bool:
            return plugin in (None, data["plugin"]) and data["level"] in allowed

        root = _root(info)
        async for message in _stream(info, LOG_CHANNEL, keep, PluginLogEntry.from_message):
            if message.data is None:
                yield missed_notice(message.missed)  # type: ignore[misc]
                continue
            yield root(message.data, PluginLogEntry.from_message)

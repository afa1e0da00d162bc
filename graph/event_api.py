"""Operations on events: emitting, browsing, redelivering, plugin logs, actions and tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON
from tortoise.queryset import QuerySet

from graph.context import Info
from graph.permissions import IsAdmin, IsAnyone, IsPlatform
from graph.types.common import (
    PageInfo,
    bounded,
    column_length,
    field,
    mutation,
    parse_id,
    shown,
)
from graph.types.events import (
    Delivery,
    DeliveryConnection,
    DeliveryEdge,
    DeliveryFilter,
    EmitEventInput,
    EmitEventResult,
    Event,
    EventConnection,
    EventEdge,
    EventFilter,
    LogLevel,
    PluginLogConnection,
    PluginLogEdge,
    PluginLogEntry,
    PluginTestResult,
    UIExtension,
)
from models import Delivery as DeliveryRow
from models import EventRow
from models import PluginLog as PluginLogRow
from runtime.catalog.browse import decode_after
from runtime.catalog.installs import get_installed
from runtime.core.auth import Principal, Role
from runtime.core.errors import BadUserInput, FieldProblem, Forbidden, NotFound
from runtime.db.pagination import SortKey, encode_cursor, page_size
from runtime.delivery.emitter import EmitRequest, EmitResult
from runtime.hosting.host import RUNNING_STATUSES, PluginTestFailed
from runtime.sdk.extensions import Action

LEVEL_ORDER = list(LogLevel)
EVENT_TYPE_LENGTH = column_length(EventRow, "type")
PLUGIN_LENGTH = column_length(PluginLogRow, "plugin")
NEWEST_FIRST = (SortKey("id", descending=True),)


def _newest_first(
    query: QuerySet[Any], first: int | None, after: str | None
) -> tuple[QuerySet[Any], int]:
    """Keyset pages on the id, newest first (ids grow with time)."""
    size = page_size(first)
    if after:
        # A cursor arrives from the caller: an id that is no integer, or one past BIGINT,
        # is BAD_USER_INPUT rather than a database error.
        query = query.filter(id__lt=decode_after(query.model, NEWEST_FIRST, after)[0])
    return query.order_by("-id").limit(size + 1), size


def _page_info(rows: list[Any], size: int) -> tuple[list[Any], PageInfo]:
    shown = rows[:size]
    cursor = encode_cursor([shown[-1].id]) if shown else None
    return shown, PageInfo(has_next_page=len(rows) > size, end_cursor=cursor)


def _request(given: EmitEventInput) -> EmitRequest:
    if not isinstance(given.payload, Mapping):
        raise BadUserInput("payload must be a JSON object")
    return EmitRequest(
        type=given.type,
        payload=given.payload,
        idempotency_key=given.idempotency_key,
        occurred_at=given.occurred_at,
        wait=given.wait,
        wait_timeout_ms=given.wait_timeout_ms,
    )


def _result(result: EmitResult) -> EmitEventResult:
    return EmitEventResult(
        event=Event.from_row(result.event),
        duplicate=result.duplicate,
        deliveries=[Delivery.from_row(row) for row in result.deliveries],
    )


@strawberry.type
class EventQuery:
    @field(permission_classes=[IsAdmin], description="Events, newest first.")
    async def events(
        self, filter: EventFilter | None = None, first: int | None = 20, after: str | None = None
    ) -> EventConnection:
        query = EventRow.all()
        given = filter or EventFilter()
        if given.type:
            query = query.filter(type=bounded(given.type, "filter.type", EVENT_TYPE_LENGTH))
        if given.since:
            query = query.filter(received_at__gte=given.since)
        if given.until:
            query = query.filter(received_at__lt=given.until)
        page, size = _newest_first(query, first, after)
        rows, info = _page_info(list(await page), size)
        edges = [EventEdge(cursor=encode_cursor([r.id]), node=Event.from_row(r)) for r in rows]
        return EventConnection(edges=edges, page_info=info)

    @field(permission_classes=[IsAdmin])
    async def event(self, id: strawberry.ID) -> Event | None:
        row = await EventRow.get_or_none(id=parse_id(id, "id"))
        return Event.from_row(row) if row else None

    @field(permission_classes=[IsAdmin], description="Deliveries, newest first.")
    async def deliveries(
        self, filter: DeliveryFilter | None = None, first: int | None = 20, after: str | None = None
    ) -> DeliveryConnection:
        query = DeliveryRow.all()
        given = filter or DeliveryFilter()
        if given.plugin:
            plugin = bounded(given.plugin, "filter.plugin", column_length(DeliveryRow, "plugin"))
            query = query.filter(plugin=plugin)
        if given.status:
            query = query.filter(status=given.status.value)
        if given.event_id is not None:
            query = query.filter(event_id=parse_id(given.event_id, "filter.eventId"))
        if given.event_type:
            event_type = bounded(given.event_type, "filter.eventType", EVENT_TYPE_LENGTH)
            query = query.filter(event__type=event_type)
        if given.since:
            query = query.filter(created_at__gte=given.since)
        if given.until:
            query = query.filter(created_at__lt=given.until)
        page, size = _newest_first(query, first, after)
        rows, info = _page_info(list(await page), size)
        edges = [
            DeliveryEdge(cursor=encode_cursor([r.id]), node=Delivery.from_row(r)) for r in rows
        ]
        return DeliveryConnection(edges=edges, page_info=info)

    @field(permission_classes=[IsAdmin], description="A plugin's log, newest first.")
    async def plugin_logs(
        self,
        plugin: str,
        level: LogLevel | None = None,
        first: int | None = 50,
        after: str | None = None,
    ) -> PluginLogConnection:
        query = PluginLogRow.filter(plugin=bounded(plugin, "plugin", PLUGIN_LENGTH))
        if level is not None:
            query = query.filter(level__in=LEVEL_ORDER[LEVEL_ORDER.index(level) :])
        page, size = _newest_first(query, first, after)
        rows, info = _page_info(list(await page), size)
        edges = [
            PluginLogEdge(cursor=encode_cursor([r.id]), node=PluginLogEntry.from_row(r))
            for r in rows
        ]
        return PluginLogConnection(edges=edges, page_info=info)

    @field(permission_classes=[IsAnyone], description="UI extension points of active plugins.")
    def ui_extensions(self, info: Info, slot: str | None = None) -> list[UIExtension]:
        found = []
        for plugin in info.context.services.host.loaded.values():
            if plugin.status not in RUNNING_STATUSES:
                continue
            for extension in plugin.context.ui.extensions:
                if slot is None or extension.slot == slot:
                    found.append(
                        UIExtension(
                            plugin=extension.plugin,
                            slot=extension.slot,
                            component=extension.component,
                            title=extension.title,
                            props=cast(JSON, dict(extension.props)),
                        )
                    )
        return found


@strawberry.type
class EventMutation:
    @mutation(permission_classes=[IsPlatform], description="Report what happened.")
    async def emit_event(self, info: Info, input: EmitEventInput) -> EmitEventResult:
        return _result(await info.context.services.host.emitter.emit(_request(input)))

    @mutation(permission_classes=[IsPlatform], description="Several events at once.")
    async def emit_events(self, info: Info, inputs: list[EmitEventInput]) -> list[EmitEventResult]:
        results = await info.context.services.host.emitter.emit_many([_request(i) for i in inputs])
        return [_result(result) for result in results]

    @mutation(
        permission_classes=[IsAdmin],
        description="Another attempt for a DEAD or SUCCEEDED delivery.",
    )
    async def redeliver(self, info: Info, delivery_id: strawberry.ID) -> Delivery:
        row = await info.context.services.host.redeliver(parse_id(delivery_id, "deliveryId"))
        return Delivery.from_row(row)

    @mutation(permission_classes=[IsAdmin], description="Test the plugin's connection.")
    async def test_plugin(self, info: Info, id: strawberry.ID) -> PluginTestResult:
        installed = await get_installed(parse_id(id, "id"))
        try:
            result = await info.context.services.host.test_plugin(installed.name)
        except LookupError:
            return PluginTestResult(
                ok=False, message=f"{installed.name} is not active", result=None
            )
        except PluginTestFailed as error:
            # The host has taken the plugin's secrets out of the message.
            return PluginTestResult(ok=False, message=str(error), result=None)
        # A plugin's test may report failure itself: {"ok": false, "message": "..."}.
        reported = dict(result) if result else {}
        ok = reported.get("ok", True)
        message = reported.get("message")
        return PluginTestResult(
            ok=ok if isinstance(ok, bool) else True,
            message=message if isinstance(message, str) else None,
            result=cast(JSON, reported) if result else None,
        )

    @mutation(permission_classes=[IsAnyone], description="Call an action a plugin registered.")
    async def plugin_action(
        self, info: Info, plugin: str, action: str, input: JSON | None = None
    ) -> JSON | None:
        principal = info.context.principal
        assert principal is not None  # IsAnyone has checked it
        registered = _registered_action(info, plugin, action)
        # The role first: a caller it does not admit never learns whether the plugin or the
        # action exists. Admins, who see every plugin anyway, are told which is missing.
        if registered is None or not _admits(principal, registered.role):
            if registered is None and principal.has(Role.ADMIN):
                raise _missing(info, plugin, action)
            raise Forbidden(
                f"no action {shown(action)} of plugin {shown(plugin)} is open to the "
                f"{' or '.join(sorted(role.value for role in principal.roles))} role"
            )
        if input is not None and not isinstance(input, Mapping):
            raise BadUserInput(
                "input must be a JSON object", [FieldProblem("input", "not an object")]
            )
        answer = await info.context.services.host.call_action(plugin, registered, input or {})
        return cast(JSON | None, answer)


def _registered_action(info: Info, plugin: str, action: str) -> Action | None:
    loaded = info.context.services.host.loaded.get(plugin)
    return None if loaded is None else loaded.context.api.actions.get(action)


def _admits(principal: Principal, role: str) -> bool:
    """Whether `principal` holds `role`; a role no token can hold admits nobody."""
    return role in {held.value for held in principal.roles}


def _missing(info: Info, plugin: str, action: str) -> NotFound:
    if plugin not in info.context.services.host.loaded:
        return NotFound(f"plugin {shown(plugin)} is not active")
    return NotFound(f"plugin {shown(plugin)} has no action {shown(action)}")


__all__ = ["EventMutation", "EventQuery"]

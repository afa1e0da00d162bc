"""Accepting events: validation, the event row and its deliveries in one transaction.

Example:
    result = await emitter.emit(EmitRequest("session.created", {"id": "s1", "user": "ann"}))
    result.event.id, result.duplicate, [d.plugin for d in result.deliveries]
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from tortoise.exceptions import IntegrityError

from models import Delivery, EventRow
from runtime.broadcast.hub import Hub
from runtime.core.errors import BadUserInput, FieldProblem
from runtime.db._linked_insert import insert_linked
from runtime.db.json_integers import may_hold_wide_integer, wide_integer_path, wide_integer_refused
from runtime.db.storable import may_hold_nul, nul_path, nul_refused
from runtime.delivery.claims import Claimed, as_utc
from runtime.delivery.event_cache import CachedEvent, EventCache
from runtime.delivery.event_types import PLATFORM, Origin, check_origin, normalise_payload
from runtime.delivery.group_commit import GroupCommit
from runtime.delivery.idempotency import (
    check_key,
    reused_for_another_event,
    reused_in_batch,
    same_event,
    same_json,
)
from runtime.delivery.records import DeliveryFacts, EventRecord, NewDelivery, StoredEvent
from runtime.delivery.worker import Reservation, Work
from runtime.sdk.outcomes import FINAL, DeliveryStatus

# Read once per delivery written: module names cost less than the enum's attributes.
PENDING, RUNNING = DeliveryStatus.PENDING, DeliveryStatus.RUNNING

MAX_PAYLOAD_BYTES = 64 * 1024
# A key another replica stores between our look-up and our insert fails the transaction; the
# next attempt's look-up finds it. More races than this in a row are not a race.
RACE_ATTEMPTS = 3
MAX_BATCH = 500
MAX_WAIT_MS = 30_000
DELIVERY_CHANNEL = "deliveries"


@dataclass(frozen=True)
class EmitRequest:
    type: str
    payload: Mapping[str, Any]
    idempotency_key: str | None = None
    occurred_at: datetime | None = None
    wait: bool = False
    wait_timeout_ms: int = 5000
    # Who emits it: what it may emit depends on it (runtime.delivery.event_types.check_origin).
    origin: Origin = PLATFORM


@dataclass
class EmitResult:
    event: EventRecord
    duplicate: bool
    deliveries: Sequence[DeliveryFacts]


class Accepted(NamedTuple):
    """A request that passed validation: its payload normalised, and where the caller named
    it (`inputs.3.` in a batch), for errors found once it is in a shared write."""

    request: EmitRequest
    payload: dict[str, Any]
    path: str


# (plugin, hook) pairs that want an event type; the host answers from its loaded plugins.
Targets = Callable[[str], list[tuple[str, str]]]
PublishedTypes = Callable[[str], bool]
Wake = Callable[[set[str]], None]
# Room a local worker keeps for a plugin's new deliveries, which are then written claimed.
Reserve = Callable[[str, int], Reservation | None]


def _check_payload(request: EmitRequest, path: str) -> dict[str, Any]:
    if not isinstance(request.payload, Mapping):
        raise BadUserInput(
            f"{path}payload must be a JSON object",
            [FieldProblem(f"{path}payload", "not an object")],
        )
    try:
        encoded = orjson.dumps(dict(request.payload))
    except TypeError as error:
        # orjson writes no integer beyond 64 bits: name where one is, if that is why.
        _refuse_wide_integers(request.payload, path)
        raise BadUserInput(
            f"{path}payload is not JSON: {error}", [FieldProblem(f"{path}payload", str(error))]
        ) from None
    size = len(encoded)
    if may_hold_nul(encoded):
        where = nul_path(dict(request.payload))
        if where is not None:
            raise nul_refused(f"{path}payload.{where}")
    if may_hold_wide_integer(encoded):
        _refuse_wide_integers(request.payload, path)
    if size > MAX_PAYLOAD_BYTES:
        raise BadUserInput(
            f"{path}payload is {size} bytes, more than the limit of {MAX_PAYLOAD_BYTES}",
            [FieldProblem(f"{path}payload", f"larger than {MAX_PAYLOAD_BYTES} bytes")],
        )
    family = request.type.split(".", 1)[0]
    payload = normalise_payload(request.type, request.payload)
    problems = []
    if family in {"session", "user"} and not isinstance(payload.get("id"), str | int):
        problems.append(
            FieldProblem(f"{path}payload.id", f"a {family} event needs the {family}'s id")
        )
    if "resources" in payload and not isinstance(payload["resources"], Mapping):
        problems.append(FieldProblem(f"{path}payload.resources", "must be an object {memory, cpu}"))
    if problems:
        raise BadUserInput.from_problems(f"{path}payload", problems)
    return payload


def _refuse_wide_integers(payload: Mapping[str, Any], path: str) -> None:
    where = wide_integer_path(payload)
    if where is not None:
        raise wide_integer_refused(f"{path}payload.{where}")


def _check_reuse_within(accepted: Sequence[Accepted]) -> None:
    """A key given twice in one call names one event: the second must repeat the first."""
    first: dict[str, Accepted] = {}
    for item in accepted:
        key = item.request.idempotency_key
        if key is None:
            continue
        earlier = first.setdefault(key, item)
        if earlier is not item and not _repeats(item, earlier):
            raise reused_in_batch(f"{item.path}idempotencyKey", f"{earlier.path}idempotencyKey")


def _repeats(item: Accepted, earlier: Accepted) -> bool:
    return item.request.type == earlier.request.type and same_json(item.payload, earlier.payload)


class Emitter:
    """Turns emit requests into stored events and deliveries, and wakes the workers."""

    def __init__(
        self,
        hub: Hub,
        targets: Targets,
        published: PublishedTypes,
        wake: Wake,
        accepted: Callable[[str], None] = lambda _type: None,
        *,
        events: EventCache | None = None,
        reserve: Reserve | None = None,
        one_trip: bool = True,
    ) -> None:
        self._hub = hub
        # On SQLite, events and deliveries written in one call on aiosqlite's thread
        # (runtime/db/_linked_insert.py); False: in Tortoise's transaction.
        self._one_trip = one_trip
        self._targets = targets
        self._published = published
        self._wake = wake
        self._accepted = accepted
        self._events = events
        self._reserve = reserve
        # Concurrent emits share a transaction (and its commit); each answers once committed.
        self._commits: GroupCommit[Accepted, EmitResult] = GroupCommit(self._store_all, MAX_BATCH)

    def _validated(self, request: EmitRequest, path: str = "") -> Accepted:
        check_origin(request.type, request.origin, self._published, f"{path}type")
        if request.wait_timeout_ms < 0 or request.wait_timeout_ms > MAX_WAIT_MS:
            raise BadUserInput(f"{path}waitTimeoutMs must be 0..{MAX_WAIT_MS}")
        check_key(request.idempotency_key, f"{path}idempotencyKey")
        return Accepted(request, _check_payload(request, path), path)

    async def emit(self, request: EmitRequest) -> EmitResult:
        return (await self.emit_many([request]))[0]

    async def emit_many(self, requests: Sequence[EmitRequest]) -> list[EmitResult]:
        if len(requests) > MAX_BATCH:
            raise BadUserInput(f"at most {MAX_BATCH} events per call, not {len(requests)}")
        batch = len(requests) > 1

        def prefix(index: int) -> str:
            return f"inputs.{index}." if batch else ""

        accepted = [self._validated(request, prefix(i)) for i, request in enumerate(requests)]
        _check_reuse_within(accepted)
        waiting = any(request.wait for request in requests)
        async with contextlib.AsyncExitStack() as stack:
            inbox = (
                await stack.enter_async_context(self._hub.subscribe(DELIVERY_CHANNEL))
                if waiting
                else None
            )
            results = await self._commits.submit(accepted)
            self._wake(
                {
                    d.plugin
                    for result in results
                    if not result.duplicate
                    for d in result.deliveries
                    if d.status == DeliveryStatus.PENDING
                }
            )
            if inbox is not None:
                budget = max(request.wait_timeout_ms for request in requests if request.wait) / 1000
                pending = {d.id for r in results for d in r.deliveries if d.status not in FINAL}
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(budget):
                        while pending:
                            message = await inbox.get()
                            if message.data is None:
                                # Outcomes were dropped from the buffer: ask the database.
                                pending -= set(
                                    await Delivery.filter(
                                        id__in=list(pending), status__in=list(FINAL)
                                    ).values_list("id", flat=True)
                                )
                                continue
                            delivery = message.data.get("delivery", {})
                            if delivery.get("id") in pending and delivery.get("status") in FINAL:
                                pending.discard(delivery["id"])
                await _reread_deliveries(results)
        return results

    async def _store_all(self, accepted: Sequence[Accepted]) -> list[EmitResult]:
        """Every new event and its deliveries in one transaction and two statements.

        Should a concurrent call (another replica) store one of these idempotency keys first,
        the transaction fails whole, nothing of it is kept, and the next attempt's look-up
        finds that event: a duplicate, or a conflict when it is another event.
        """
        for _ in range(RACE_ATTEMPTS - 1):
            try:
                return await self._insert_all(accepted)
            except IntegrityError:
                continue
        return await self._insert_all(accepted)

    async def _insert_all(self, accepted: Sequence[Accepted]) -> list[EmitResult]:
        """Insert what is new; repeated idempotency keys (stored before, or earlier in this
        batch) answer with the stored event, or CONFLICT when they name another event."""
        requests = [item.request for item in accepted]
        payloads = [item.payload for item in accepted]
        keys = {request.idempotency_key for request in requests if request.idempotency_key}
        known = {
            event.idempotency_key: event
            for event in (await EventRow.filter(idempotency_key__in=list(keys)) if keys else [])
        }
        fresh = _fresh(accepted, known)
        now = datetime.now(UTC)
        events = [
            StoredEvent(
                id=0,
                type=requests[i].type,
                payload=payloads[i],
                idempotency_key=requests[i].idempotency_key,
                occurred_at=as_utc(requests[i].occurred_at) or now,
                received_at=now,
            )
            for i in fresh
        ]
        # One answer per type: a batch is mostly of one or two.
        targets = {kind: self._targets(kind) for kind in {event.type for event in events}}
        by_index = [
            (index, plugin, hook)
            for index, event in enumerate(events)
            for plugin, hook in targets[event.type]
        ]
        reservations: dict[str, Reservation] = {}
        try:
            self._reserve_for(by_index, reservations)
            taken = _taken_by(by_index, reservations)
            event_ids, ids = await insert_linked(
                EventRow,
                [_event_row(event) for event in events],
                Delivery,
                [
                    _delivery_row(
                        index, plugin, hook, now, reservations[plugin] if handed else None
                    )
                    for (index, plugin, hook), handed in zip(by_index, taken, strict=True)
                ],
                link="event_id",
                one_trip=self._one_trip,
            )
            for event, id in zip(events, event_ids, strict=True):
                event.id = id  # its id, once drawn
            wanted = [(events[index].id, plugin, hook) for index, plugin, hook in by_index]
            deliveries = self._hand_over(events, wanted, taken, ids, now, reservations)
        finally:
            # Filled ones are closed already; any other's rows were never written.
            for reservation in reservations.values():
                reservation.cancel()
        by_event: dict[int, list[DeliveryFacts]] = {event.id: [] for event in events}
        for delivery in deliveries:
            by_event[delivery.event_id].append(delivery)
        stored = {index: event for index, event in zip(fresh, events, strict=True)}
        results: list[EmitResult] = []
        for index, request in enumerate(requests):
            if index in stored:
                event = stored[index]
                self._accepted(event.type)
                results.append(EmitResult(event, duplicate=False, deliveries=by_event[event.id]))
            else:
                key = str(request.idempotency_key)
                original = known.get(key) or next(
                    result.event for result in results if result.event.idempotency_key == key
                )
                results.append(await self._duplicate(original))
        return results

    def _reserve_for(
        self, wanted: Sequence[tuple[int, str, str]], reservations: dict[str, Reservation]
    ) -> None:
        """Reserve room for the wanted deliveries, each as it is granted, into `reservations`
        (so that whatever follows can give back every one granted)."""
        if self._reserve is None:
            return
        for plugin, count in Counter(plugin for _, plugin, _ in wanted).items():
            reservation = self._reserve(plugin, count)
            if reservation is not None:
                reservations[plugin] = reservation

    def _hand_over(
        self,
        events: Sequence[StoredEvent],
        wanted: Sequence[tuple[int, str, str]],
        taken: Sequence[bool],
        ids: Sequence[int],
        now: datetime,
        reservations: Mapping[str, Reservation],
    ) -> list[NewDelivery]:
        """The committed deliveries; those written claimed go to their workers' queues."""
        cached = {event.id: self._cached(event) for event in events}
        deliveries: list[NewDelivery] = []
        handed_over: dict[str, list[Work]] = {plugin: [] for plugin in reservations}
        for id, (event_id, plugin, hook), handed in zip(ids, wanted, taken, strict=True):
            status = PENDING
            if handed:
                status = RUNNING
                lease_until = reservations[plugin].lease_until
                held = Claimed(id, event_id, plugin, hook, 1, now, now, lease_until=lease_until)
                handed_over[plugin].append((held, cached[event_id]))
            deliveries.append(
                NewDelivery(
                    id, event_id, plugin, hook, now, now, status=status, attempts=int(handed)
                )
            )
        for plugin, reservation in reservations.items():
            reservation.fill(handed_over[plugin])
        return deliveries

    def _cached(self, event: EventRecord) -> CachedEvent:
        if self._events is None:
            return CachedEvent.of(event)
        return self._events.add(event)

    async def _duplicate(self, event: EventRecord) -> EmitResult:
        deliveries = list(await Delivery.filter(event_id=event.id).order_by("id"))
        return EmitResult(event=event, duplicate=True, deliveries=deliveries)


def _fresh(accepted: Sequence[Accepted], known: Mapping[str | None, EventRow]) -> list[int]:
    """The indexes of the events to write: not repeating a stored key, nor one earlier here.
    Only a repeated key costs a comparison: the type and the payload as stored."""
    fresh: list[int] = []
    claimed: dict[str, Accepted] = {}
    for index, item in enumerate(accepted):
        key = item.request.idempotency_key
        if not key:
            fresh.append(index)
            continue
        field = f"{item.path}idempotencyKey"
        stored = known.get(key)
        if stored is not None:
            if not same_event(item.request.type, item.payload, stored):
                raise reused_for_another_event(field, stored)
            continue
        earlier = claimed.setdefault(key, item)
        if earlier is not item:
            # Another caller's emit in this shared write: the write fails, and each caller's
            # is tried again alone, where this one finds the other's event stored.
            if not _repeats(item, earlier):
                raise reused_in_batch(field, f"{earlier.path}idempotencyKey")
            continue
        fresh.append(index)
    return fresh


def _event_row(event: StoredEvent) -> dict[str, Any]:
    return {
        "type": event.type,
        "payload": event.payload,
        "idempotency_key": event.idempotency_key,
        "occurred_at": event.occurred_at,
        "received_at": event.received_at,
    }


def _taken_by(
    wanted: Sequence[tuple[int, str, str]], reservations: Mapping[str, Reservation]
) -> list[bool]:
    """Which of the wanted deliveries are written claimed: each plugin's first ones, as many
    as its reservation holds (the rest wait in the table, in order, to be claimed)."""
    left = {plugin: reservation.count for plugin, reservation in reservations.items()}
    taken = []
    for _, plugin, _ in wanted:
        handed = left.get(plugin, 0) > 0
        if handed:
            left[plugin] -= 1
        taken.append(handed)
    return taken


def _delivery_row(
    event_index: int, plugin: str, hook: str, now: datetime, reservation: Reservation | None
) -> dict[str, Any]:
    """A new delivery's row (its event by index in the batch, for `insert_linked`): due now,
    or claimed by a local worker under its lease."""
    return {
        "event_id": event_index,
        "plugin": plugin,
        "hook": hook,
        "status": PENDING if reservation is None else RUNNING,
        "attempts": 0 if reservation is None else 1,
        "next_attempt_at": now,
        "lease_expires_at": None if reservation is None else reservation.lease_expires_at,
        "created_at": now,
        "updated_at": now,
    }


async def _reread_deliveries(results: Sequence[EmitResult]) -> None:
    """Refresh each result's deliveries after waiting for their outcomes, in one query."""
    by_event: dict[int, list[Delivery]] = {result.event.id: [] for result in results}
    for delivery in await Delivery.filter(event_id__in=list(by_event)).order_by("id"):
        by_event[delivery.event_id].append(delivery)
    for result in results:
        result.deliveries = by_event[result.event.id]

"""The durable dispatcher: claims due deliveries, runs hooks in isolation, records outcomes.

Each active plugin has its own worker with its own concurrency limit, timeout and circuit
breaker, so a plugin that hangs or fails only ever delays its own deliveries. Deliveries are
claimed with a lease (PostgreSQL: FOR UPDATE SKIP LOCKED, so replicas share the work); a lease
that runs out means its process died, and the delivery is claimed again. Attempts are counted
at claim time, so a hook that kills the process still runs out of attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from tortoise.connection import get_connection

from models import Delivery, Event
from runtime.bulk_sql import db_value, dialect_of, marker
from runtime.outcomes import OutcomeWriter
from runtime.sdk import Event as SdkEvent
from runtime.sdk import PermanentFailure, RetryLater, Skip

log = logging.getLogger(__name__)

FINAL = frozenset({"SUCCEEDED", "DEAD", "SKIPPED"})
MAX_BACKOFF_SECONDS = 3600.0
# How long a cancelled worker waits for a claim in flight to answer, to give it back; past
# that, the claim's lease returns it.
CLAIM_SETTLE_SECONDS = 5.0


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    backoff_base: float = 2.0

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        """Full jitter: uniform in [0, base·2^(attempts-1)], or the plugin's Retry-After."""
        if retry_after is not None:
            return max(0.0, min(retry_after, MAX_BACKOFF_SECONDS))
        ceiling = min(self.backoff_base * 2 ** max(0, attempts - 1), MAX_BACKOFF_SECONDS)
        return random.uniform(0, ceiling)


@dataclass
class CircuitBreaker:
    """Opens after `threshold` consecutive failures; while open, one probe per `cooldown`."""

    threshold: int = 5
    cooldown: float = 30.0
    failures: int = 0
    opened_at: float | None = None

    @property
    def open(self) -> bool:
        return self.opened_at is not None

    def allowance(self, free_slots: int) -> int:
        """How many deliveries may be claimed now."""
        if self.opened_at is None:
            return free_slots
        if free_slots > 0 and time.monotonic() - self.opened_at >= self.cooldown:
            self.opened_at = time.monotonic()
            return min(1, free_slots)
        return 0

    def record(self, success: bool) -> str | None:
        """'opened' or 'closed' when the state changes."""
        if success:
            was_open, self.failures, self.opened_at = self.open, 0, None
            return "closed" if was_open else None
        self.failures += 1
        if not self.open and self.failures >= self.threshold:
            self.opened_at = time.monotonic()
            return "opened"
        return None


Publisher = Callable[[dict[str, Any]], Awaitable[None]]
HookCaller = Callable[[str, Mapping[str, Any], SdkEvent], Awaitable[Any]]


async def claim(plugin: str, limit: int, lease: float) -> list[Delivery]:
    """Mark up to `limit` due deliveries of `plugin` RUNNING under a lease, and return them."""
    if limit <= 0:
        return []
    connection = get_connection("default")
    dialect = dialect_of(connection)
    now = datetime.now(UTC)
    p = [marker(dialect, index) for index in range(1, 5)]
    locking = " FOR UPDATE SKIP LOCKED" if dialect == "postgres" else ""
    sql = (
        f"UPDATE deliveries SET status = 'RUNNING', attempts = attempts + 1, "
        f"lease_expires_at = {p[0]}, updated_at = {p[1]} "
        f"WHERE id IN (SELECT id FROM deliveries WHERE plugin = {p[2]} AND ("
        f"(status IN ('PENDING', 'RETRYING') AND next_attempt_at <= {p[1]}) OR "
        f"(status = 'RUNNING' AND lease_expires_at < {p[1]})) "
        f"ORDER BY next_attempt_at, id LIMIT {p[3]}{locking}) "
        f"RETURNING *"
    )
    if dialect == "postgres":
        # Tortoise's asyncpg client returns no rows for a statement starting with UPDATE.
        sql = f"WITH claimed AS ({sql}) SELECT * FROM claimed"
    values = [
        db_value(Delivery, "lease_expires_at", now + timedelta(seconds=lease)),
        db_value(Delivery, "next_attempt_at", now),
        plugin,
        limit,
    ]
    rows = await connection.execute_query_dict(sql, values)
    return sorted((Delivery._init_from_db(**row) for row in rows), key=lambda d: d.id)


async def _claim_with_events(plugin: str, limit: int, lease: float) -> list[tuple[Delivery, Event]]:
    """Claim due deliveries and read their events; a failed read gives the claims back."""
    deliveries = await claim(plugin, limit, lease)
    if not deliveries:
        return []
    try:
        events = await Event.in_bulk({d.event_id for d in deliveries}, "id")
    except Exception:
        await _hand_back(deliveries)
        raise
    return [(delivery, events[delivery.event_id]) for delivery in deliveries]


async def _hand_back(deliveries: list[Delivery]) -> None:
    """Give claimed deliveries back unrun: due now, and the claim's attempt not counted."""
    for delivery in deliveries:
        await Delivery.filter(id=delivery.id, status="RUNNING", attempts=delivery.attempts).update(
            status="RETRYING",
            next_attempt_at=datetime.now(UTC),
            lease_expires_at=None,
            attempts=max(0, delivery.attempts - 1),
        )


def outcome_message(delivery: Delivery, event: Event) -> dict[str, Any]:
    """What subscribers receive about a delivery: enough to answer without a database read."""
    return {
        "delivery": {
            "id": delivery.id,
            "eventId": delivery.event_id,
            "plugin": delivery.plugin,
            "hook": delivery.hook,
            "status": delivery.status,
            "attempts": delivery.attempts,
            "nextAttemptAt": delivery.next_attempt_at.isoformat()
            if delivery.next_attempt_at
            else None,
            "durationMs": delivery.duration_ms,
            "result": delivery.result,
            "error": delivery.error,
            "createdAt": delivery.created_at.isoformat() if delivery.created_at else None,
            "updatedAt": delivery.updated_at.isoformat() if delivery.updated_at else None,
        },
        "event": {
            "id": event.id,
            "type": event.type,
            "idempotencyKey": event.idempotency_key,
            "occurredAt": event.occurred_at.isoformat(),
            "receivedAt": event.received_at.isoformat() if event.received_at else None,
        },
    }


def _jsonable(result: Any) -> Any:
    """A hook's result as the JSON column stores it.

    Tortoise reads a `str` given to a JSONField as JSON text already encoded (and refuses
    one that is not), so a plain string is kept as `{"value": ...}`.
    """
    if result is None:
        return None
    try:
        value = orjson.loads(orjson.dumps(result))
    except TypeError:
        return {"value": repr(result)}
    return {"value": value} if isinstance(value, str) else value


class PluginWorker:
    """Runs one plugin's deliveries: at most `concurrency` at once, each under `timeout`."""

    def __init__(
        self,
        plugin: str,
        call_hook: HookCaller,
        publish: Publisher,
        on_breaker: Callable[[str], Awaitable[None]],
        *,
        policy: RetryPolicy,
        timeout: float,
        concurrency: int,
        poll_interval: float,
        breaker: CircuitBreaker | None = None,
        outcomes: OutcomeWriter | None = None,
    ) -> None:
        self.plugin = plugin
        self._call_hook = call_hook
        self._publish = publish
        self._on_breaker = on_breaker
        self._policy = policy
        self._timeout = timeout
        self._concurrency = concurrency
        self._poll = poll_interval
        self._wake = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self.breaker = breaker or CircuitBreaker()
        self._outcomes = outcomes or OutcomeWriter()

    @property
    def lease(self) -> float:
        return self._timeout * 2 + 5

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._loop(), name=f"worker:{self.plugin}")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop claiming; let running deliveries finish within `grace`, then hand them back.

        The loop is asked to stop rather than only cancelled: on Python 3.11 a cancellation
        that arrives as `wait_for` completes is swallowed, and the loop would go on for ever.
        """
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            _, unfinished = await asyncio.wait({self._loop_task}, timeout=grace)
            if unfinished:
                self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self._running:
            _, pending = await asyncio.wait(self._running, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if pending:
                log.info(
                    "handed back deliveries still running at stop",
                    extra={"plugin": self.plugin, "deliveries": len(pending)},
                )

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                await self._claim_and_run()
            except Exception:
                log.exception("claiming deliveries failed", extra={"plugin": self.plugin})
            if self._stopping:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll):
                    await self._wake.wait()
            self._wake.clear()

    async def _claim_and_run(self) -> None:
        allowance = self.breaker.allowance(self._concurrency - len(self._running))
        claiming = asyncio.ensure_future(_claim_with_events(self.plugin, allowance, self.lease))
        try:
            claimed = await asyncio.shield(claiming)
        except asyncio.CancelledError:
            # A stop that cannot wait: the claim may be committed already, and what it took
            # goes back rather than staying RUNNING until its lease runs out.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLAIM_SETTLE_SECONDS):
                    await _hand_back([delivery for delivery, _ in await claiming])
            raise
        for delivery, event in claimed:
            task = asyncio.create_task(self._run(delivery, event), name=f"delivery:{delivery.id}")
            self._running.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._wake.set()

    async def _run(self, delivery: Delivery, event: Event) -> None:
        sdk_event = SdkEvent(
            id=str(event.id),
            type=event.type,
            payload=event.payload,
            occurred_at=event.occurred_at,
            attributes={"deliveryId": str(delivery.id), "attempt": delivery.attempts},
        )
        started = time.perf_counter()
        status: str = "SUCCEEDED"
        result: Any = None
        error: str | None = None
        retry_after: float | None = None
        try:
            async with asyncio.timeout(self._timeout):
                result = _jsonable(await self._call_hook(delivery.hook, event.payload, sdk_event))
        except asyncio.CancelledError:
            # Shutdown: hand the delivery back for this or another process to run.
            await _hand_back([delivery])
            raise
        except TimeoutError:
            status, error = "RETRYING", f"timed out after {self._timeout:g}s"
        except Skip as skip:
            status, result = "SKIPPED", {"skipped": str(skip) or True}
        except PermanentFailure as failure:
            status, error = "DEAD", str(failure) or type(failure).__name__
        except RetryLater as later:
            status, error, retry_after = "RETRYING", str(later) or "retry later", later.after
        except Exception as failure:
            status, error = "RETRYING", f"{type(failure).__name__}: {failure}"
        delivery.duration_ms = round((time.perf_counter() - started) * 1000, 3)
        if status == "RETRYING" and delivery.attempts >= self._policy.max_attempts:
            status = "DEAD"
        delivery.status, delivery.result = status, result
        # The model types the nullable TextField as `str`.
        delivery.error = error  # type: ignore[assignment,unused-ignore]
        delivery.lease_expires_at = None
        if status == "RETRYING":
            delay = self._policy.delay(delivery.attempts, retry_after)
            delivery.next_attempt_at = datetime.now(UTC) + timedelta(seconds=delay)
        delivery.updated_at = datetime.now(UTC)
        if not await self._outcomes.write(delivery):
            return
        # A skipped event is an answer, and a vendor's "slow down" (a Retry-After) is the
        # vendor working as designed: neither counts towards the breaker.
        if retry_after is None:
            change = self.breaker.record(status in {"SUCCEEDED", "SKIPPED"})
            if change:
                await self._on_breaker(change)
        await self._publish(outcome_message(delivery, event))

"""Claiming deliveries under a lease, and giving claims back unrun.

A claim marks due deliveries RUNNING with a lease and counts the attempt (PostgreSQL: FOR
UPDATE SKIP LOCKED, so replicas share the work). A lease that runs out means its process
died, and the delivery is claimed again. What a claim returns is a `Claimed` record, not an
ORM object: the dispatcher makes thousands a second and needs a handful of their columns.

Example:
    taken = await claim("slack", limit=64, lease=65.0)    # [Claimed, ...] in id order
    await hand_back(taken[32:])                            # due again, attempt not counted
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.connection import get_connection
from tortoise.expressions import F

from models import Delivery
from runtime.db._bulk_sql import chunks, db_value, dialect_of, marker
from runtime.sdk.outcomes import DeliveryStatus

RETURNED = ("id", "event_id", "plugin", "hook", "attempts", "created_at", "next_attempt_at")


@dataclass(slots=True)
class Claimed:
    """A delivery this process holds, and the outcome it is given.

    `lease_until` is on the monotonic clock: the worker compares it before starting the hook,
    so a delivery whose lease could run out while it runs is given back instead.
    """

    id: int
    event_id: int
    plugin: str
    hook: str
    attempts: int
    created_at: datetime | None
    next_attempt_at: datetime | None
    lease_until: float = 0.0
    status: str = DeliveryStatus.RUNNING
    result: Any = None
    error: str | None = None
    duration_ms: float | None = None
    updated_at: datetime | None = field(default=None)


def as_utc(value: datetime | str | None) -> datetime | None:
    """A time as the driver returns it (text from SQLite), or as a caller gave it (a naive one
    taken to be UTC), as the models give it back: in UTC.

    The models' own conversion costs several times this, and a claim converts two per row.
    """
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


Times = dict[datetime | str | None, datetime | None]


def _claimed(row: dict[str, Any], lease_until: float, times: Times) -> Claimed:
    return Claimed(
        id=int(row["id"]),
        event_id=int(row["event_id"]),
        plugin=row["plugin"],
        hook=row["hook"],
        attempts=int(row["attempts"]),
        created_at=_time(row["created_at"], times),
        next_attempt_at=_time(row["next_attempt_at"], times),
        lease_until=lease_until,
    )


def _time(value: datetime | str | None, times: Times) -> datetime | None:
    # The rows of one claim mostly share their times (deliveries of one batch of events
    # were created, and fall due, together): each distinct one is converted once.
    try:
        return times[value]
    except KeyError:
        converted = times[value] = as_utc(value)
        return converted


async def claim(plugin: str, limit: int, lease: float) -> list[Claimed]:
    """Mark up to `limit` due deliveries of `plugin` RUNNING under a lease, and return them."""
    if limit <= 0:
        return []
    connection = get_connection("default")
    dialect = dialect_of(connection)
    now = datetime.now(UTC)
    lease_until = time.monotonic() + lease
    p = [marker(dialect, index) for index in range(1, 5)]
    locking = " FOR UPDATE SKIP LOCKED" if dialect == "postgres" else ""
    sql = (
        f"UPDATE deliveries SET status = 'RUNNING', attempts = attempts + 1, "
        f"lease_expires_at = {p[0]}, updated_at = {p[1]} "
        f"WHERE id IN (SELECT id FROM deliveries WHERE plugin = {p[2]} AND ("
        f"(status IN ('PENDING', 'RETRYING') AND next_attempt_at <= {p[1]}) OR "
        f"(status = 'RUNNING' AND lease_expires_at < {p[1]})) "
        f"ORDER BY next_attempt_at, id LIMIT {p[3]}{locking}) "
        f"RETURNING {', '.join(RETURNED)}"
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
    times: Times = {}
    return sorted((_claimed(row, lease_until, times) for row in rows), key=lambda d: d.id)


async def hand_back(deliveries: Sequence[Claimed]) -> None:
    """Give claimed deliveries back unrun: due now, and the claim's attempt not counted.

    Only rows the claim still holds change (RUNNING with the claim's attempt count): one a
    replica took over after the lease ran out is its, not ours.
    """
    by_attempts: dict[int, list[int]] = defaultdict(list)
    for delivery in deliveries:
        by_attempts[delivery.attempts].append(delivery.id)
    for attempts, ids in by_attempts.items():
        for chunk in chunks(ids, 1):
            await Delivery.filter(
                id__in=chunk, status=DeliveryStatus.RUNNING, attempts=attempts
            ).update(
                status=DeliveryStatus.RETRYING,
                next_attempt_at=datetime.now(UTC),
                lease_expires_at=None,
                attempts=F("attempts") - 1,
            )

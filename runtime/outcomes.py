"""Writing delivery outcomes: every outcome ready at the same moment in one statement.

Each outcome lands only while the claim that produced it still holds (the row is RUNNING with
the attempt count of that claim), so a replica that took a delivery over is never overwritten.
Outcomes that arrive while a write is in flight go together in the next one: under load one
statement (and one commit) records many deliveries, and alone an outcome waits for no timer.

Example:
    writer = OutcomeWriter()
    written = await writer.write(delivery)  # False: the claim was taken over meanwhile
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import orjson
from tortoise.connection import get_connection

from models import Delivery
from runtime.bulk_sql import chunks, db_value, dialect_of, marker
from runtime.claims import Claimed
from runtime.group_commit import GroupCommit

log = logging.getLogger(__name__)

WRITE_TRIES = 5
MAX_BATCH = 1000
COLUMNS = (
    ("id", "bigint"),
    ("attempts", "integer"),
    ("status", "text"),
    ("result", "text"),
    ("error", "text"),
    ("duration_ms", "double precision"),
    ("next_attempt_at", "timestamptz"),
    ("updated_at", "timestamptz"),
)


def _row(delivery: Claimed) -> list[Any]:
    return [
        delivery.id,
        delivery.attempts,
        delivery.status,
        None if delivery.result is None else orjson.dumps(delivery.result).decode(),
        delivery.error,
        delivery.duration_ms,
        db_value(Delivery, "next_attempt_at", delivery.next_attempt_at),
        db_value(Delivery, "updated_at", delivery.updated_at),
    ]


def _statement(dialect: str, rows: int) -> str:
    names = ", ".join(name for name, _ in COLUMNS)
    tuples = []
    for row in range(rows):
        places = []
        for column, (_, kind) in enumerate(COLUMNS):
            place = marker(dialect, row * len(COLUMNS) + column + 1)
            # PostgreSQL types a bare parameter in VALUES as text; say what each column is.
            places.append(f"{place}::{kind}" if dialect == "postgres" else place)
        tuples.append(f"({', '.join(places)})")
    result = "v.result::jsonb" if dialect == "postgres" else "v.result"
    return (
        f"WITH v({names}) AS (VALUES {', '.join(tuples)}) "
        f"UPDATE deliveries SET status = v.status, result = {result}, error = v.error, "
        "duration_ms = v.duration_ms, lease_expires_at = NULL, "
        "next_attempt_at = v.next_attempt_at, updated_at = v.updated_at "
        "FROM v WHERE deliveries.id = v.id AND deliveries.status = 'RUNNING' "
        "AND deliveries.attempts = v.attempts RETURNING deliveries.id"
    )


async def write_outcomes(deliveries: Sequence[Claimed]) -> set[int]:
    """Record these outcomes where their claims still hold; the ids that were written."""
    connection = get_connection("default")
    dialect = dialect_of(connection)
    written: set[int] = set()
    for chunk in chunks(deliveries, len(COLUMNS)):
        values = [value for delivery in chunk for value in _row(delivery)]
        rows = await connection.execute_query_dict(_statement(dialect, len(chunk)), values)
        written.update(int(row["id"]) for row in rows)
    return written


class OutcomeWriter:
    """Collects outcomes from every worker of a process and writes them in batches.

    A dropped database connection must not lose an outcome a hook already produced (the
    delivery would run again when its lease ran out), so a failed write is retried.
    """

    def __init__(self) -> None:
        self._commits: GroupCommit[Claimed, bool] = GroupCommit(self._write_batch, MAX_BATCH)

    async def write(self, delivery: Claimed) -> bool:
        """Record `delivery`'s outcome; False when another process took its claim over."""
        (written,) = await self._commits.submit([delivery])
        return written

    async def write_many(self, deliveries: Sequence[Claimed]) -> list[bool]:
        """Record these outcomes; for each, False when its claim was taken over."""
        return await self._commits.submit(deliveries)

    async def drain(self) -> None:
        """Wait for every outcome handed in so far to be written (or given up)."""
        await self._commits.drain()

    async def _write_batch(self, deliveries: list[Claimed]) -> list[bool]:
        written = await self._write_with_retries(deliveries)
        if written is None:
            return [False] * len(deliveries)
        for delivery in deliveries:
            if delivery.id not in written:
                log.warning(
                    "a delivery's claim was taken over before its outcome was written",
                    extra={"delivery": delivery.id, "plugin": delivery.plugin},
                )
        return [delivery.id in written for delivery in deliveries]

    async def _write_with_retries(self, deliveries: list[Claimed]) -> set[int] | None:
        """The ids written, or None when the database stayed out of reach."""
        for attempt in range(WRITE_TRIES):
            try:
                return await write_outcomes(deliveries)
            except Exception:
                if attempt == WRITE_TRIES - 1:
                    log.exception(
                        "outcomes could not be written", extra={"deliveries": len(deliveries)}
                    )
                    return None
                await asyncio.sleep(0.2 * 2**attempt)
        return None

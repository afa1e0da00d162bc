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
from datetime import datetime
from typing import Any

import orjson
from tortoise.connection import get_connection

from runtime.db._bulk_sql import dialect_of
from runtime.db.storable import storable_text
from runtime.delivery.claims import Claimed
from runtime.delivery.group_commit import GroupCommit
from runtime.sdk.outcomes import DeliveryStatus

# Read once per outcome written: a module name costs less than the enum's attribute.
RETRYING = DeliveryStatus.RETRYING

log = logging.getLogger(__name__)

WRITE_TRIES = 5
MAX_ERROR = 2000
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


def _moment(dialect: str, moment: datetime | None) -> str | None:
    """A time as the column holds it: SQLite compares times as text, so the text must be the
    one the driver binds (`isoformat(" ")`); PostgreSQL parses the ISO form."""
    if moment is None:
        return None
    return moment.isoformat(" ") if dialect == "sqlite" else moment.isoformat()


def _rows(dialect: str, deliveries: Sequence[Claimed]) -> list[dict[str, Any]]:
    # A batch's outcomes mostly share one update time: its text is made once.
    texts: dict[datetime, str | None] = {}
    rows = []
    for delivery in deliveries:
        updated = delivery.updated_at
        text = None
        if updated is not None:
            text = texts.get(updated)
            if text is None:
                text = texts[updated] = _moment(dialect, updated)
        rows.append(_row(dialect, delivery, text))
    return rows


def _row(dialect: str, delivery: Claimed, updated_at: str | None) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "attempts": delivery.attempts,
        "status": delivery.status,
        "result": None if delivery.result is None else orjson.dumps(delivery.result).decode(),
        "error": delivery.error,
        "duration_ms": delivery.duration_ms,
        # Only a retry moves the time a delivery is due; the others keep the row's.
        "next_attempt_at": _moment(dialect, delivery.next_attempt_at)
        if delivery.status == RETRYING
        else None,
        "updated_at": updated_at,
    }


# The outcomes travel as one JSON array bound to one parameter: the statement's text is the
# same for any batch (so the database prepares it once), and SQLite compiles a long VALUES
# list in time that grows with the square of its rows.
_UPDATE = (
    "UPDATE deliveries SET status = v.status, result = {result}, error = v.error, "
    "duration_ms = v.duration_ms, lease_expires_at = NULL, "
    "next_attempt_at = COALESCE(v.next_attempt_at, deliveries.next_attempt_at), "
    "updated_at = v.updated_at "
    "FROM v WHERE deliveries.id = v.id AND deliveries.status = 'RUNNING' "
    "AND deliveries.attempts = v.attempts{returning}"
)
_SQLITE_ROWS = (
    "WITH v AS MATERIALIZED (SELECT "
    + ", ".join(f"json_extract(value, '$.{name}') AS {name}" for name, _ in COLUMNS)
    + " FROM json_each(?1)) "
)
# SQLite answers with the number of rows changed, not with each row's id: Python's sqlite3
# gives up and takes back the interpreter lock for every row a statement returns, and each
# time it is taken back from a busy event loop costs up to a switch interval (5 ms).
STATEMENTS = {
    "sqlite": _SQLITE_ROWS + _UPDATE.format(result="v.result", returning=""),
    "postgres": "WITH v AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS v("
    + ", ".join(f"{name} {kind}" for name, kind in COLUMNS)
    + ")) "
    + _UPDATE.format(result="v.result::jsonb", returning=" RETURNING deliveries.id"),
}
# Which of the outcomes the rows hold, once fewer rows changed than there were outcomes: a row
# another claim took over has another attempt count.
SQLITE_WRITTEN = (
    _SQLITE_ROWS + "SELECT deliveries.id FROM deliveries JOIN v ON deliveries.id = v.id "
    "AND deliveries.attempts = v.attempts AND deliveries.status = v.status "
    "AND deliveries.updated_at = v.updated_at"
)


async def write_outcomes(deliveries: Sequence[Claimed]) -> set[int]:
    """Record these outcomes where their claims still hold; the ids that were written."""
    connection = get_connection("default")
    dialect = dialect_of(connection)
    statement = STATEMENTS[dialect]
    written: set[int] = set()
    for start in range(0, len(deliveries), MAX_BATCH):
        chunk = deliveries[start : start + MAX_BATCH]
        rows_json = orjson.dumps(_rows(dialect, chunk)).decode()
        if dialect != "sqlite":
            rows = await connection.execute_query_dict(statement, [rows_json])
            written.update(int(row["id"]) for row in rows)
            continue
        changed, _ = await connection.execute_query(statement, [rows_json])
        if changed == len(chunk):
            written.update(delivery.id for delivery in chunk)
        else:
            rows = await connection.execute_query_dict(SQLITE_WRITTEN, [rows_json])
            written.update(int(row["id"]) for row in rows)
    return written


class OutcomeWriter:
    """Collects outcomes from every worker of a process and writes them in batches.

    A dropped database connection must not lose an outcome a hook already produced (the
    delivery would run again when its lease ran out), so a failed write is retried. A batch
    still refused while the database answers is written in halves, and those in halves, so
    that an outcome the database refuses is the only one lost.
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
        if written is None and len(deliveries) > 1 and await _answers():
            written = await _write_apart(deliveries)
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


async def _answers() -> bool:
    """Whether the database answers: a batch it refuses while answering holds a bad row."""
    try:
        await get_connection("default").execute_query("SELECT 1")
    except Exception:
        return False
    return True


async def _write_apart(deliveries: list[Claimed]) -> set[int]:
    """The ids written when each half goes alone, and each half of a half that fails, down
    to the single outcomes the database refuses."""
    middle = len(deliveries) // 2
    written: set[int] = set()
    for half in (deliveries[:middle], deliveries[middle:]):
        try:
            written |= await write_outcomes(half)
        except Exception as error:
            if len(half) == 1:
                written |= await _write_without_result(half[0], error)
            else:
                written |= await _write_apart(half)
    return written


async def _write_without_result(delivery: Claimed, refused: Exception) -> set[int]:
    """An outcome the database refuses, written again without what the hook returned: kept
    unwritten, the delivery would run again once its lease ended, and be refused again."""
    log.error(
        "the database refuses a delivery's outcome; it is written without its result",
        extra={"delivery": delivery.id, "plugin": delivery.plugin, "refused": str(refused)},
    )
    delivery.result = None
    delivery.error = storable_text(f"its outcome could not be stored: {refused}")[:MAX_ERROR]
    try:
        return await write_outcomes([delivery])
    except Exception:
        log.exception("a delivery's outcome could not be written", extra={"delivery": delivery.id})
        return set()

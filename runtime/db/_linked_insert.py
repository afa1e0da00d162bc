"""Rows and the rows that refer to them, inserted in one transaction: events and their deliveries.

The children's rows name their parent by its index among the parents' rows; the ids the
database draws for the parents take those places before the children are inserted.

On SQLite the whole transaction is one function run on aiosqlite's thread. Each statement
sent on its own waits for that thread to wake and, while the event loop is busy, for the
interpreter lock, then for the loop to take its answer: Tortoise's transaction is five such
trips (a COMMIT and a BEGIN to open it, the two inserts, the COMMIT), and the connection is
held for all of them. On PostgreSQL it is a transaction of two statements.

That one call goes through aiosqlite's private `Connection._execute` and `._conn`
(runtime/db/README.md). Where they are missing (an aiosqlite that renamed them), or with
`one_trip=False` (the server's fast paths off), SQLite takes Tortoise's transaction too.

Example:
    event_ids, delivery_ids = await insert_linked(
        EventRow, [{"type": "session.created", ...}],
        Delivery, [{"event_id": 0, "plugin": "slack", ...}],   # 0: the first event
        link="event_id",
    )
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient, TransactionalDBClient
from tortoise.connection import get_connection
from tortoise.exceptions import IntegrityError, OperationalError
from tortoise.models import Model
from tortoise.transactions import in_transaction

from runtime.db._bulk_sql import bound_values, chunks, dialect_of, insert_ids, values_clause

log = logging.getLogger(__name__)


@dataclass
class _Insert:
    """One multi-row INSERT, without RETURNING: its rows' ids follow from the last one drawn."""

    sql: str
    values: list[Any]
    rows: int


async def insert_linked(
    parent: type[Model],
    parent_rows: Sequence[Mapping[str, Any]],
    child: type[Model],
    child_rows: Sequence[Mapping[str, Any]],
    link: str,
    *,
    one_trip: bool = True,
) -> tuple[list[int], list[int]]:
    """Insert the parents, then the children with `link` turned from a parent's index into
    its id; the ids of both, in the order of their rows. `one_trip=False` takes Tortoise's
    transaction on SQLite too."""
    if not parent_rows:
        return [], []
    client = get_connection("default")
    if (
        one_trip
        and dialect_of(client) == "sqlite"
        and not isinstance(client, TransactionalDBClient)
    ):
        columns = list(child_rows[0]) if child_rows else [link]
        ids = await _in_one_trip(
            client,
            _inserts(parent, parent_rows),
            _inserts(child, child_rows),
            columns.index(link),
            len(columns),
        )
        if ids is not None:
            return ids
    async with in_transaction() as connection:
        parent_ids = await insert_ids(parent, parent_rows, connection)
        linked = [{**row, link: parent_ids[row[link]]} for row in child_rows]
        return parent_ids, await insert_ids(child, linked, connection)


# The aiosqlite internals the one trip needs: a method running a function on its thread, and
# the sqlite3 connection that function is given.
_PRIVATE_API = ("_execute", "_conn")
_missing_api_logged = False


def _has_private_api(connection: object) -> bool:
    """Whether the aiosqlite connection's class offers what the one trip uses (looked up on
    the class: reading `_conn` on the instance would run it)."""
    global _missing_api_logged
    missing = [name for name in _PRIVATE_API if not hasattr(type(connection), name)]
    if missing and not _missing_api_logged:
        _missing_api_logged = True
        log.warning(
            "aiosqlite's connection lacks %s: events are written in an ordinary transaction",
            ", ".join(missing),
        )
    return not missing


def _inserts(model: type[Model], rows: Sequence[Mapping[str, Any]]) -> list[_Insert]:
    if not rows:
        return []
    columns = list(rows[0])
    head = f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) VALUES "
    return [
        _Insert(
            head + values_clause("sqlite", len(chunk), len(columns)),
            bound_values(model, columns, chunk),
            len(chunk),
        )
        for chunk in chunks(rows, len(columns))
    ]


async def _in_one_trip(
    client: BaseDBAsyncClient,
    parents: list[_Insert],
    children: list[_Insert],
    link_at: int,
    width: int,
) -> tuple[list[int], list[int]] | None:
    """The children's `link_at`-th of `width` values hold their parent's index; None when
    aiosqlite lacks the private API (nothing was written)."""
    async with client.acquire_connection() as connection:
        if not _has_private_api(connection):
            return None
        for insert in (*parents, *children):
            # Logged as the client logs what it sends, so SQL logs and counts show them too.
            client.log.debug("%s: %s", insert.sql, insert.values)
        try:
            result: tuple[list[int], list[int]] = await connection._execute(
                _transaction, connection._conn, parents, children, link_at, width
            )
        except sqlite3.IntegrityError as error:
            raise IntegrityError(error) from error
        except sqlite3.OperationalError as error:
            raise OperationalError(error) from error
    return result


def _transaction(
    connection: sqlite3.Connection,
    parents: list[_Insert],
    children: list[_Insert],
    link_at: int,
    width: int,
) -> tuple[list[int], list[int]]:
    """Runs on aiosqlite's thread, the client's lock held."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        parent_ids = _run(connection, parents)
        for insert in children:
            values = insert.values
            for at in range(link_at, len(values), width):
                values[at] = parent_ids[values[at]]
        child_ids = _run(connection, children)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return parent_ids, child_ids


def _run(connection: sqlite3.Connection, inserts: list[_Insert]) -> list[int]:
    """Each row an INSERT adds takes one more than the largest rowid before it (the largest
    ever held, as AUTOINCREMENT keeps it; past 2**63 - 1 the insert fails), and the
    transaction holds the write lock: the last id and the row count give every id."""
    ids: list[int] = []
    for insert in inserts:
        last = connection.execute(insert.sql, insert.values).lastrowid
        if last is None:
            raise OperationalError("an insert drew no rowid")
        ids.extend(range(last - insert.rows + 1, last + 1))
    return ids

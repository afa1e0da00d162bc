"""Short SQLite reads answered on the loop's thread: the rows the client gives, never staler."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tortoise.backends.sqlite.client import SqliteClient
from tortoise.connection import get_connection
from tortoise.transactions import in_transaction

from models import EventRow
from runtime.db import _inline_reads as inline_reads
from runtime.db._inline_reads import read_rows
from tests.conftest import Database, QueryCounter

SQL = 'SELECT "id", "type", "payload" FROM "events" WHERE "type" = ? ORDER BY "id"'
SQL_PG = SQL.replace("?", "$1")


def statement(db: Database) -> str:
    return SQL if db.backend == "sqlite" else SQL_PG


async def stored(count: int) -> None:
    now = datetime.now(UTC)
    await EventRow.bulk_create(
        [EventRow(type="t", payload={"n": n}, occurred_at=now) for n in range(count)]
    )


async def test_a_read_gives_the_rows_the_client_gives(db: Database) -> None:
    await stored(3)
    client = get_connection("default")
    rows = await read_rows(client, statement(db), ["t"])
    assert rows == await client.execute_query_dict(statement(db), ["t"])
    assert len(rows) == 3


async def test_a_read_sees_every_write_committed_before_it(db: Database) -> None:
    client = get_connection("default")
    assert await read_rows(client, statement(db), ["t"]) == []
    await stored(2)
    assert len(await read_rows(client, statement(db), ["t"])) == 2


async def test_a_read_inside_a_transaction_sees_what_the_transaction_wrote(db: Database) -> None:
    async with in_transaction() as connection:
        await EventRow.create(type="t", payload={}, occurred_at=datetime.now(UTC))
        assert len(await read_rows(connection, statement(db), ["t"])) == 1
    assert len(await read_rows(get_connection("default"), statement(db), ["t"])) == 1


async def test_a_read_over_its_budget_is_answered_by_the_client_instead(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await stored(500)
    client = get_connection("default")
    answered = 0
    real = client.execute_query_dict

    async def through_client(sql: str, values: list[object]) -> list[dict[str, object]]:
        nonlocal answered
        answered += 1
        return await real(sql, values)

    monkeypatch.setattr(client, "execute_query_dict", through_client)
    if db.backend == "sqlite":
        monkeypatch.setattr(inline_reads, "BUDGET_SECONDS", 60.0)  # however busy the machine
        assert len(await read_rows(client, SQL, ["t"])) == 500
        assert answered == 0  # inline: within the budget
    monkeypatch.setattr(inline_reads, "BUDGET_SECONDS", -1.0)  # spent at the first check
    assert len(await read_rows(client, statement(db), ["t"])) == 500
    assert answered == 1


async def test_a_read_is_logged_as_the_client_logs_its_statements(
    db: Database, sql_counter: QueryCounter
) -> None:
    await read_rows(get_connection("default"), statement(db), ["t"])
    assert sql_counter.statements == [statement(db)]


async def test_readers_are_closed_past_the_most_kept_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inline_reads, "_READERS", type(inline_reads._READERS)())
    sqlite3.connect(tmp_path / "a.db").execute("CREATE TABLE t (x)").connection.commit()
    clients = [
        SqliteClient(str(tmp_path / "a.db"), connection_name=f"c{n}")
        for n in range(inline_reads.MAX_READERS + 1)
    ]
    assert await read_rows(clients[0], "SELECT x FROM t", []) == []
    first = inline_reads._READERS[id(clients[0])][1]
    for client in clients[1:]:
        assert await read_rows(client, "SELECT x FROM t", []) == []
    assert len(inline_reads._READERS) == inline_reads.MAX_READERS
    assert id(clients[0]) not in inline_reads._READERS
    assert first is not None
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        first.rows("SELECT x FROM t", [])


async def test_a_locked_database_sends_the_read_to_the_client_without_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inline_reads, "_READERS", type(inline_reads._READERS)())
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("CREATE TABLE t (x)")
    holder.execute("INSERT INTO t VALUES ('from the file')")
    # Exclusive locking keeps even WAL readers out until the holder lets go, which it does a
    # while later: a reader that waited for the lock would then read the file itself.
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(0.5, holder.close)
    client = SqliteClient(str(path), connection_name="locked")

    async def from_the_client(sql: str, values: list[object]) -> list[dict[str, object]]:
        return [{"x": "from the client"}]

    monkeypatch.setattr(client, "execute_query_dict", from_the_client)
    release.start()
    try:
        rows = await read_rows(client, "SELECT x FROM t", [])
    finally:
        release.join()
    assert rows == [{"x": "from the client"}]

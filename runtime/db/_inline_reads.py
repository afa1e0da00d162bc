"""Short SQLite reads answered on the event loop's own thread.

aiosqlite runs every statement on a thread of its own, and each waits for two thread
wake-ups: about 0.15 ms on a shared machine, more than a catalog page's query itself takes
(0.06 ms over 10,000 entries). A read given to `read_rows` runs at once instead, on a
read-only connection the loop's thread keeps for itself (WAL lets it read beside the writer,
and each statement sees every write committed before it), under a time budget: a statement
still running when its budget is spent is interrupted, which a read survives unchanged, and
goes to aiosqlite's thread as before. A slow search holds the loop up for the budget at most,
and a locked database not at all: the reader never waits for a lock, the client does.

PostgreSQL, in-memory SQLite databases and reads inside a transaction (whose uncommitted
writes only its own connection sees) take the usual way.

Example:
    rows = await read_rows(client, 'SELECT "id" FROM "catalog_plugins" WHERE "name" = ?', ["x"])
"""

from __future__ import annotations

import logging
import sqlite3
import time
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient, TransactionalDBClient

log = logging.getLogger(__name__)

# How long one statement may hold the loop up before it is sent to aiosqlite's thread instead.
BUDGET_SECONDS = 0.002
# SQLite checks the budget every this many virtual machine steps (some microseconds).
CHECK_EVERY_STEPS = 1000


class _Reader:
    """A read-only connection to one database file, used from the loop's thread only."""

    def __init__(self, path: str) -> None:
        # No busy wait (SQLite's default is 5 s): a locked database is the client's to wait
        # for, on its own thread, not the loop's under a 2 ms budget.
        self._connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0)
        self._connection.row_factory = sqlite3.Row
        self._deadline = 0.0
        self._connection.set_progress_handler(self._spent, CHECK_EVERY_STEPS)

    def _spent(self) -> int:
        return int(time.perf_counter() > self._deadline)

    def close(self) -> None:
        self._connection.close()

    def rows(self, sql: str, values: Sequence[Any]) -> list[dict[str, Any]]:
        self._deadline = time.perf_counter() + BUDGET_SECONDS
        return [dict(row) for row in self._connection.execute(sql, values)]


# The readers of the clients that read last, by client: a client made anew (a database
# opened again, perhaps a new file at the same path) gets a reader of its own, and the
# least recently used is closed once more than this many are open.
MAX_READERS = 4
_READERS: OrderedDict[int, tuple[weakref.ref[BaseDBAsyncClient], _Reader | None]] = OrderedDict()


def _reader_of(client: BaseDBAsyncClient) -> _Reader | None:
    known = _READERS.get(id(client))
    if known is not None and known[0]() is client:
        _READERS.move_to_end(id(client))
        return known[1]
    reader: _Reader | None = None
    path = getattr(client, "filename", None)
    if (
        client.capabilities.dialect == "sqlite"
        and isinstance(path, str)
        and path != ":memory:"
        and "mode=memory" not in path.partition("?")[2]
        and not path.startswith("file::memory:")
    ):
        try:
            reader = _Reader(path)
        except sqlite3.Error as error:
            log.warning("reads go through aiosqlite's thread: %s", error)
    _READERS.pop(id(client), None)
    _READERS[id(client)] = (weakref.ref(client), reader)
    while len(_READERS) > MAX_READERS:
        _, (_, evicted) = _READERS.popitem(last=False)
        if evicted is not None:
            evicted.close()
    return reader


async def read_rows(
    client: BaseDBAsyncClient, sql: str, values: Sequence[Any]
) -> list[dict[str, Any]]:
    """The rows of a read-only statement, as `client.execute_query_dict` gives them."""
    if not isinstance(client, TransactionalDBClient):
        reader = _reader_of(client)
        if reader is not None:
            # Logged as the client logs what it sends, so SQL logs and counts show it too.
            client.log.debug("%s: %s", sql, values)
            try:
                return reader.rows(sql, values)
            except sqlite3.Error:
                pass  # over its budget, or anything else: the usual way answers for it
    return await client.execute_query_dict(sql, list(values))

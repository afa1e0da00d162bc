"""Group commit: what many callers hand in while a write runs goes together in the next one.

A commit is the costly part of a small write (an fsync on SQLite, a round trip on
PostgreSQL). Callers that arrive while one write is in flight wait for the next, which takes
them all in one transaction; each caller still returns only once its own rows are committed.
Alone, a caller waits for no timer. A shared write that fails is tried again for each caller
alone, so only the caller whose items the database refuses gets the error.

Example:
    commits = GroupCommit(store_rows)          # store_rows(list[Row]) -> list[Stored]
    stored = await commits.submit([row_a, row_b])
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

I = TypeVar("I")  # noqa: E741
O = TypeVar("O")  # noqa: E741


class GroupCommit(Generic[I, O]):
    """Batches `write` calls: `write(items)` returns one output per item, in order."""

    def __init__(self, write: Callable[[list[I]], Awaitable[Sequence[O]]], max_items: int) -> None:
        self._write = write
        self._max_items = max_items
        self._pending: list[tuple[list[I], asyncio.Future[list[O]]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def submit(self, items: Sequence[I]) -> list[O]:
        """Write `items` with whatever else is waiting; their outputs once committed."""
        done: asyncio.Future[list[O]] = asyncio.get_running_loop().create_future()
        self._pending.append((list(items), done))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush(), name="group-commit")
        # Shielded: a caller that goes away must not cancel the write others wait for.
        return await asyncio.shield(done)

    async def drain(self) -> None:
        """Wait until everything handed in so far is written (or has failed)."""
        while self._flushing is not None and not self._flushing.done():
            await asyncio.shield(self._flushing)

    def _take(self) -> list[tuple[list[I], asyncio.Future[list[O]]]]:
        taken: list[tuple[list[I], asyncio.Future[list[O]]]] = []
        count = 0
        while self._pending and (not taken or count + len(self._pending[0][0]) <= self._max_items):
            entry = self._pending.pop(0)
            taken.append(entry)
            count += len(entry[0])
        return taken

    async def _flush(self) -> None:
        while self._pending:
            batch = self._take()
            items = [item for entry in batch for item in entry[0]]
            try:
                outputs = list(await self._write(items))
            except Exception as error:
                if len(batch) == 1:
                    _fail(batch[0][1], error)
                else:
                    await self._write_apart(batch)
                continue
            start = 0
            for entry, done in batch:
                if not done.done():
                    done.set_result(outputs[start : start + len(entry)])
                start += len(entry)

    async def _write_apart(self, batch: list[tuple[list[I], asyncio.Future[list[O]]]]) -> None:
        """Each caller's items in a write of their own, after their shared write failed: one
        caller's rows the database refuses must not fail the callers they were merged with,
        and each caller's items still stand or fall together."""
        for items, done in batch:
            try:
                outputs = list(await self._write(items))
            except Exception as error:
                _fail(done, error)
            else:
                if not done.done():
                    done.set_result(outputs)


def _fail(done: asyncio.Future[list[O]], error: Exception) -> None:
    if not done.done():
        done.set_exception(error)

"""Group commit: callers arriving during a write share the next one, and get their own outputs."""

from __future__ import annotations

import asyncio

import pytest

from runtime.delivery.group_commit import GroupCommit


class Store:
    def __init__(self, fail_on: str | None = None) -> None:
        self.writes: list[list[str]] = []
        self.fail_on = fail_on
        self.gate = asyncio.Event()
        self.gate.set()

    async def write(self, items: list[str]) -> list[str]:
        self.writes.append(items)
        await self.gate.wait()
        if self.fail_on in items:
            raise RuntimeError(f"cannot store {self.fail_on}")
        return [item.upper() for item in items]


async def test_callers_arriving_during_a_write_share_the_next_one() -> None:
    store = Store()
    commits = GroupCommit(store.write, max_items=100)
    store.gate.clear()
    first = asyncio.ensure_future(commits.submit(["a"]))
    await asyncio.sleep(0)
    later = [asyncio.ensure_future(commits.submit([x, x + x])) for x in "bcd"]
    await asyncio.sleep(0)
    store.gate.set()
    assert await first == ["A"]
    assert await asyncio.gather(*later) == [["B", "BB"], ["C", "CC"], ["D", "DD"]]
    assert store.writes == [["a"], ["b", "bb", "c", "cc", "d", "dd"]]


async def test_a_write_takes_at_most_max_items_but_never_splits_a_caller() -> None:
    store = Store()
    commits = GroupCommit(store.write, max_items=3)
    store.gate.clear()
    calls = [asyncio.ensure_future(commits.submit(list(x))) for x in ["ab", "cd", "e", "fghij"]]
    await asyncio.sleep(0)
    store.gate.set()
    await asyncio.gather(*calls)
    assert store.writes == [["a", "b"], ["c", "d", "e"], ["f", "g", "h", "i", "j"]]


async def test_a_failed_write_is_tried_again_caller_by_caller_so_only_its_cause_fails() -> None:
    store = Store(fail_on="bad")
    commits = GroupCommit(store.write, max_items=4)
    store.gate.clear()
    calls = [asyncio.ensure_future(commits.submit(x)) for x in [["ok"], ["bad", "b2"], ["fine"]]]
    await asyncio.sleep(0)
    store.gate.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert results[0] == ["OK"] and results[2] == ["FINE"]
    assert isinstance(results[1], RuntimeError)
    # A caller's items stand or fall together: "b2" was not written apart from "bad".
    assert store.writes == [["ok", "bad", "b2", "fine"], ["ok"], ["bad", "b2"], ["fine"]]


async def test_a_failed_write_of_one_caller_is_not_tried_again() -> None:
    store = Store(fail_on="bad")
    commits = GroupCommit(store.write, max_items=4)
    with pytest.raises(RuntimeError, match="cannot store bad"):
        await commits.submit(["bad"])
    assert store.writes == [["bad"]]


async def test_a_caller_that_leaves_does_not_cancel_the_write_of_the_others() -> None:
    store = Store()
    commits = GroupCommit(store.write, max_items=10)
    store.gate.clear()
    leaving = asyncio.ensure_future(commits.submit(["x"]))
    staying = asyncio.ensure_future(commits.submit(["y"]))
    await asyncio.sleep(0)
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    store.gate.set()
    assert await staying == ["Y"]
    await commits.drain()
    assert store.writes == [["x", "y"]]

"""`within`: plugin code outside deliveries under a time limit that it cannot outstay, for the
host and the harness alike."""

from __future__ import annotations

import asyncio

import pytest

from runtime.sdk.hook_runner import TimedOut, within


async def test_a_call_that_finishes_in_time_answers_what_it_returned() -> None:
    async def quick() -> str:
        return "done"

    assert await within(5, "quick", quick()) == "done"


async def test_a_call_that_raises_raises_the_same() -> None:
    async def failing() -> None:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        await within(5, "failing", failing())


async def test_a_call_past_its_time_is_cancelled_and_named() -> None:
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    with pytest.raises(TimedOut, match=r"^on_load did not finish within 0\.05 s$"):
        await within(0.05, "on_load", forever())
    await asyncio.wait_for(cancelled.wait(), 10)


async def test_a_call_that_swallows_its_cancellation_is_not_waited_for() -> None:
    release = asyncio.Event()
    finished = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await release.wait()  # goes on after being told to stop
        finished.set()

    with pytest.raises(TimedOut):
        await within(0.05, "on_unload", stubborn())
    assert not finished.is_set()
    release.set()
    await asyncio.wait_for(finished.wait(), 10)

"""Hook timeouts: one timer per worker cuts off each hook at its own deadline."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from runtime.delivery.deadlines import Deadlines


async def _watched(deadlines: Deadlines, seconds: float) -> str:
    with deadlines.watch():
        await asyncio.sleep(seconds)
    return "done"


async def test_a_hook_that_overruns_its_timeout_raises_timeout_error_in_its_task() -> None:
    deadlines = Deadlines(timeout=0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await asyncio.create_task(_watched(deadlines, 5))
    assert 0.04 <= loop.time() - started < 1
    task = asyncio.create_task(_watched(deadlines, 0))
    assert await task == "done"
    assert task.cancelling() == 0


async def test_hooks_that_return_at_once_share_one_timer() -> None:
    deadlines = Deadlines(timeout=30)
    with deadlines.watch():
        pass
    timer = deadlines._timer
    assert timer is not None
    for _ in range(100):
        assert await asyncio.create_task(_watched(deadlines, 0)) == "done"
    assert deadlines._timer is timer and deadlines._ends == {}
    deadlines.cancel()
    assert timer.cancelled()


async def test_each_of_several_running_hooks_is_cut_off_at_its_own_deadline() -> None:
    deadlines = Deadlines(timeout=0.1)
    first = asyncio.create_task(_watched(deadlines, 5))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(_watched(deadlines, 5))
    quick = asyncio.create_task(_watched(deadlines, 0.01))
    with pytest.raises(TimeoutError):
        await first
    assert not second.done()  # its own deadline is later
    assert await quick == "done"
    with pytest.raises(TimeoutError):
        await second


async def test_a_stop_that_cancels_an_overrunning_hook_stays_a_cancellation() -> None:
    deadlines = Deadlines(timeout=0.05)
    stopping = asyncio.Event()

    async def hook() -> None:
        with deadlines.watch():
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                stopping.set()
                await asyncio.sleep(0.01)  # the stop's cancellation arrives meanwhile
                raise

    task = asyncio.create_task(hook())
    await stopping.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_hook_that_swallows_the_cut_off_leaves_its_task_able_to_go_on() -> None:
    deadlines = Deadlines(timeout=0.05)

    async def stubborn() -> str:
        with deadlines.watch(), contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(5)
        await asyncio.sleep(0.01)  # not cancelled again: the task goes on
        return "went on"

    task = asyncio.create_task(stubborn())
    assert await task == "went on"
    assert task.cancelling() == 0


async def test_a_task_named_to_the_watch_is_the_one_cut_off() -> None:
    deadlines = Deadlines(timeout=0.05)

    async def runner() -> str:
        task = asyncio.current_task()
        with deadlines.watch(task):
            await asyncio.sleep(5)
        return "done"

    with pytest.raises(TimeoutError):
        await asyncio.create_task(runner())
    assert deadlines._ends == {}

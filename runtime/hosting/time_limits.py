"""A time limit on plugin code the host calls outside deliveries: on_load, on_enable,
on_disable, on_unload, the connection test and actions.

Event hooks have theirs in the worker (`runtime/delivery/deadlines.py`); these calls are rare,
so each gets a task and a timer of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


class TimedOut(Exception):
    """Plugin code did not finish in time; the message says which and how long it had."""


def _settle(task: asyncio.Task[Any]) -> None:
    # Read what the abandoned call ended with, so asyncio never reports it as unretrieved.
    if not task.cancelled():
        task.exception()


async def within(seconds: float, what: str, call: Awaitable[T]) -> T:
    """`call`'s result, or TimedOut ("<what> did not finish within <seconds> s").

    The call runs in a task of its own that is cancelled at the deadline and not waited for:
    plugin code that swallows the cancellation cannot hold its caller (the host's start-up,
    an install, a request) any longer.
    """
    task = asyncio.ensure_future(call)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        task.add_done_callback(_settle)
        raise
    if not done:
        task.cancel()
        task.add_done_callback(_settle)
        raise TimedOut(f"{what} did not finish within {seconds:g} s")
    return task.result()

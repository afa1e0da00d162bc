"""Hook timeouts kept by one timer per worker instead of one per hook.

A worker runs thousands of hooks a second, and most return before any timer could fire:
arming and cancelling one for each (`asyncio.timeout`) cost more than the hooks themselves.
Here the worker notes when each running hook must end, and a single timer, armed for the
earliest of those, cancels the tasks whose hook overran; the overrun surfaces in that task as
`TimeoutError`, as with `asyncio.timeout`.

Example:
    deadlines = Deadlines(timeout=10.0)
    # in the task that runs the hook:
    with deadlines.watch():
        result = await hook(...)       # TimeoutError once it has run for 10 s
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any


class Deadlines:
    """When each watched task's hook must end, and the one timer that enforces it."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._ends: dict[asyncio.Task[object], float] = {}
        self._overran: set[asyncio.Task[object]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, task: asyncio.Task[Any] | None = None) -> _Watch:
        """A context for one hook call in `task`, the current one (a caller that runs many
        hooks in one task names it, and spares a lookup per hook)."""
        task = task or asyncio.current_task()
        assert task is not None, "deadlines watch tasks"
        return _Watch(self, task)

    def _start(self, task: asyncio.Task[object]) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + self.timeout
        self._ends[task] = end
        if self._timer is None:
            self._timer = loop.call_at(end, self._expire)

    def _finish(self, task: asyncio.Task[object], error: BaseException | None) -> bool:
        """Forget the task's deadline; True when its hook was cut off for overrunning it."""
        del self._ends[task]
        if task not in self._overran:
            return False
        self._overran.discard(task)
        # Ours was the only cancellation asked for: the hook timed out. Another (a stop)
        # still stands, and goes on as a cancellation.
        return task.uncancel() == 0 and isinstance(error, asyncio.CancelledError)

    def _expire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        for task, end in self._ends.items():
            if end <= now and task not in self._overran:
                self._overran.add(task)
                task.cancel()
        pending = [end for task, end in self._ends.items() if task not in self._overran]
        if pending:
            self._timer = loop.call_at(min(pending), self._expire)

    def cancel(self) -> None:
        """Stop the timer (the worker is stopping)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _Watch:
    __slots__ = ("_deadlines", "_task")

    def __init__(self, deadlines: Deadlines, task: asyncio.Task[object]) -> None:
        self._deadlines = deadlines
        self._task = task

    def __enter__(self) -> None:
        self._deadlines._start(self._task)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._deadlines._finish(self._task, error):
            raise TimeoutError(f"the hook ran longer than {self._deadlines.timeout:g}s") from None

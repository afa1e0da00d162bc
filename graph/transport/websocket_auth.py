"""A WebSocket connection lives no longer than the token it was opened with.

The token is checked in `connection_init` (`GraphQLApp.on_ws_connect`). After that, the
handlers of both protocols the server speaks (graph/transport/websocket_handlers.py) use an
`ExpiryWatch` armed with the token's expiry:

- every operation started over the socket is refused once the token has expired: the socket is
  closed with 4403 and the reason, and the operation never runs;
- at the moment the token expires the socket's operations are stopped (streaming subscriptions
  included) and it is closed with 4403 and the reason, whether it is idle or busy.

A socket that sends no `connection_init` within the view's `connection_init_wait_timeout` is
closed with 4408 (strawberry does this for graphql-transport-ws; the graphql-ws handler with
`INIT_TIMEOUT_CODE`).

Example:
    watch = ExpiryWatch(close_the_socket)
    watch.arm(expiry_of(context))  # once connection_init is acknowledged
    if watch.expired(): ...  # before each operation
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

EXPIRED_CODE = 4403
EXPIRED_REASON = "the token has expired"
INIT_TIMEOUT_CODE = 4408
INIT_TIMEOUT_REASON = "Connection initialisation timeout"


class ExpiryWatch:
    """Runs `close` when the connection's token expires, once armed with its expiry."""

    def __init__(self, close: Callable[[], Awaitable[None]]) -> None:
        self._close = close
        self._task: asyncio.Task[None] | None = None
        self.expires_at = math.inf

    def arm(self, expires_at: float) -> None:
        self.expires_at = expires_at
        if self._task is None and math.isfinite(expires_at):
            self._task = asyncio.create_task(self._close_at_expiry())

    def expired(self) -> bool:
        return time.time() >= self.expires_at

    def disarm(self) -> None:
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()

    async def _close_at_expiry(self) -> None:
        # The expiry is wall-clock time, the loop's timers are not: should the wall clock have
        # been slowed meanwhile, sleep again rather than close early. (No event to wait on.)
        while (remaining := self.expires_at - time.time()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(remaining)
        await self._close()


def expiry_of(context: Any) -> float:
    """When the token of the connection's caller expires (infinity: never, or no caller)."""
    principal = getattr(context, "principal", None)
    return float(getattr(principal, "expires_at", math.inf))


def subject_of(context: Any) -> str | None:
    return getattr(getattr(context, "principal", None), "subject", None)

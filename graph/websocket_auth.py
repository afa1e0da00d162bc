"""A WebSocket connection lives no longer than the token it was opened with.

The token is checked in `connection_init` (`GraphQLApp.on_ws_connect`). After that, for both
protocols the server speaks:

- every operation started over the socket is refused once the token has expired: the socket is
  closed with 4403 and the reason, and the operation never runs;
- at the moment the token expires the socket's operations are stopped (streaming subscriptions
  included) and it is closed with 4403 and the reason, whether it is idle or busy;
- a socket that sends no `connection_init` within the view's `connection_init_wait_timeout` is
  closed with 4408 (strawberry does this for graphql-transport-ws; the legacy graphql-ws
  handler gets it here).

Example:
    class View(GraphQL):
        graphql_transport_ws_handler_class = TokenCheckedTransportWS
        graphql_ws_handler_class = TokenCheckedLegacyWS
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage as TransportInit,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ConnectionInitMessage as LegacyInit,
)
from strawberry.subscriptions.protocols.graphql_ws.types import StartMessage

from graph.fanout import TransportWSHandler

log = logging.getLogger(__name__)

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


def _expiry_of(context: Any) -> float:
    principal = getattr(context, "principal", None)
    return float(getattr(principal, "expires_at", math.inf))


def _subject_of(context: Any) -> str | None:
    return getattr(getattr(context, "principal", None), "subject", None)


class TokenCheckedTransportWS(TransportWSHandler):
    """graphql-transport-ws, each operation and the connection itself bound to the token."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.expiry = ExpiryWatch(self.close_expired)

    async def handle_connection_init(self, message: TransportInit) -> None:
        await super().handle_connection_init(message)
        if self.connection_acknowledged:
            self.expiry.arm(_expiry_of(self.context))

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        if self.connection_acknowledged and self.expiry.expired():
            await self.close_expired()
            return
        await super().handle_subscribe(message)

    async def shutdown(self) -> None:
        self.expiry.disarm()
        await super().shutdown()

    async def close_expired(self) -> None:
        """Stop every operation, then close the socket saying why."""
        log.info("websocket closed: token expired", extra={"subject": _subject_of(self.context)})
        for operation_id in list(self.operations):
            await self.cleanup_operation(operation_id)
        await self.websocket.close(EXPIRED_CODE, EXPIRED_REASON)


class TokenCheckedLegacyWS(BaseGraphQLWSHandler[Any, Any]):
    """The legacy graphql-ws protocol with the same token checks, and a connection_init limit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.expiry = ExpiryWatch(self.close_expired)
        self._init_timeout: asyncio.Task[None] | None = None

    async def handle(self) -> None:
        self._init_timeout = asyncio.create_task(self._close_unless_initialised())
        try:
            await super().handle()
        finally:
            self._init_timeout.cancel()
            self.expiry.disarm()

    async def handle_connection_init(self, message: LegacyInit) -> None:
        if self._init_timeout is not None:
            self._init_timeout.cancel()
        await super().handle_connection_init(message)
        if self.connection_acknowledged:
            self.expiry.arm(_expiry_of(self.context))

    async def handle_start(self, message: StartMessage) -> None:
        if self.connection_acknowledged and self.expiry.expired():
            await self.close_expired()
            return
        await super().handle_start(message)

    async def close_expired(self) -> None:
        """Stop every operation, then close the socket saying why."""
        log.info("websocket closed: token expired", extra={"subject": _subject_of(self.context)})
        await self.cleanup()
        await self.websocket.close(EXPIRED_CODE, EXPIRED_REASON)

    async def _close_unless_initialised(self) -> None:
        await asyncio.sleep(self.view.connection_init_wait_timeout.total_seconds())
        await self.websocket.close(INIT_TIMEOUT_CODE, INIT_TIMEOUT_REASON)

"""The handlers of the two WebSocket protocols /graphql speaks, one class each.

Both do the same things, in this order, to an operation a client starts:

- once the connection's token has expired, the socket is closed with 4403 and the operation
  never runs (graph/transport/websocket_auth.py; the socket is closed at the expiry itself too);
- past `max_subscriptions_per_connection` operations at once, it is refused with one error
  coded RATE_LIMITED (strawberry sends a bare message); the connection goes on;
- otherwise it runs, and what it yields is coded and masked by the schema (graph/schema.py), as
  on every transport.

`TransportWS` (graphql-transport-ws) sends subscription messages as graph/_fast/fanout.py does;
`LegacyWS` (graphql-ws) also closes, with 4408, a socket that sends no `connection_init` in the
view's `connection_init_wait_timeout` (strawberry's own handler waits for ever).

Example:
    class View(GraphQL):
        graphql_transport_ws_handler_class = TransportWS
        graphql_ws_handler_class = LegacyWS
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from typing import Any

from graphql import GraphQLError, GraphQLFormattedError
from strawberry.subscriptions.protocols.graphql_transport_ws import types as transport_ws
from strawberry.subscriptions.protocols.graphql_ws import types as legacy_ws
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

from graph._fast.fanout import TransportWSHandler
from graph.transport.websocket_auth import (
    EXPIRED_CODE,
    EXPIRED_REASON,
    INIT_TIMEOUT_CODE,
    INIT_TIMEOUT_REASON,
    ExpiryWatch,
    expiry_of,
    subject_of,
)

log = logging.getLogger(__name__)


def operation_limit_error(limit: int) -> GraphQLFormattedError:
    message = f"at most {limit} operations run at once on one connection"
    return GraphQLError(message, extensions={"code": "RATE_LIMITED", "limit": limit}).formatted


def over_limit(limit: int, operation_id: str, running: Collection[str]) -> bool:
    """Whether starting `operation_id` beside `running` passes `limit` (an id already running
    is strawberry's to refuse as a duplicate)."""
    return operation_id not in running and len(running) >= limit


class TransportWS(TransportWSHandler):
    """graphql-transport-ws: operations bound to the token and limited in number, every error
    coded, subscription messages sent as graph/_fast/fanout.py does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.expiry = ExpiryWatch(self.close_expired)

    async def handle_connection_init(self, message: transport_ws.ConnectionInitMessage) -> None:
        await super().handle_connection_init(message)
        if self.connection_acknowledged:
            self.expiry.arm(expiry_of(self.context))

    async def handle_subscribe(self, message: transport_ws.SubscribeMessage) -> None:
        if self.connection_acknowledged:  # before that, strawberry closes the socket with 4401
            if self.expiry.expired():
                await self.close_expired()
                return
            limit = self.max_subscriptions_per_connection
            if limit is not None and over_limit(limit, message["id"], self.operations):
                refused = transport_ws.ErrorMessage(
                    id=message["id"], type="error", payload=[operation_limit_error(limit)]
                )
                await self.send_message(refused)
                return
        await super().handle_subscribe(message)

    async def shutdown(self) -> None:
        self.expiry.disarm()
        await super().shutdown()

    async def close_expired(self) -> None:
        """Stop every operation, then close the socket saying why."""
        log.info("websocket closed: token expired", extra={"subject": subject_of(self.context)})
        for operation_id in list(self.operations):
            await self.cleanup_operation(operation_id)
        await self.websocket.close(EXPIRED_CODE, EXPIRED_REASON)


class LegacyWS(BaseGraphQLWSHandler[Any, Any]):
    """graphql-ws, the protocol before graphql-transport-ws: operations bound to the token and
    limited in number, every error coded, connection_init awaited for a limited time."""

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

    async def handle_connection_init(self, message: legacy_ws.ConnectionInitMessage) -> None:
        if self._init_timeout is not None:
            self._init_timeout.cancel()
        await super().handle_connection_init(message)
        if self.connection_acknowledged:
            self.expiry.arm(expiry_of(self.context))

    async def handle_start(self, message: legacy_ws.StartMessage) -> None:
        if self.connection_acknowledged:  # before that, strawberry closes the socket with 4401
            if self.expiry.expired():
                await self.close_expired()
                return
            limit = self.max_subscriptions_per_connection
            if limit is not None and over_limit(limit, message["id"], self.tasks):
                refused = legacy_ws.ErrorMessage(
                    type="error", id=message["id"], payload=operation_limit_error(limit)
                )
                await self.send_message(refused)
                return
        await super().handle_start(message)

    async def close_expired(self) -> None:
        """Stop every operation, then close the socket saying why."""
        log.info("websocket closed: token expired", extra={"subject": subject_of(self.context)})
        await self.cleanup()
        await self.websocket.close(EXPIRED_CODE, EXPIRED_REASON)

    async def _close_unless_initialised(self) -> None:
        await asyncio.sleep(self.view.connection_init_wait_timeout.total_seconds())
        await self.websocket.close(INIT_TIMEOUT_CODE, INIT_TIMEOUT_REASON)

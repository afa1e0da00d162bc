"""The WebSocket protocols' handlers, their own errors coded as every other error is.

What an operation yields is coded by the schema (graph/schema.py); the only error a handler
makes itself is the refusal of an operation past `max_subscriptions_per_connection`, which
strawberry sends as a bare message. Here it is RATE_LIMITED.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError, GraphQLFormattedError
from strawberry.subscriptions.protocols.graphql_transport_ws import types as transport_ws
from strawberry.subscriptions.protocols.graphql_ws import types as legacy_ws
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

from graph.fanout import TransportWSHandler


def operation_limit_error(limit: int) -> GraphQLFormattedError:
    message = f"at most {limit} operations run at once on one connection"
    return GraphQLError(message, extensions={"code": "RATE_LIMITED", "limit": limit}).formatted


class TransportWS(TransportWSHandler):
    """graphql-transport-ws, as graph/fanout.py serves it."""

    async def handle_subscribe(self, message: transport_ws.SubscribeMessage) -> None:
        limit = self.max_subscriptions_per_connection
        if (
            self.connection_acknowledged
            and message["id"] not in self.operations
            and limit is not None
            and len(self.operations) >= limit
        ):
            refused = transport_ws.ErrorMessage(
                id=message["id"], type="error", payload=[operation_limit_error(limit)]
            )
            await self.send_message(refused)
            return
        await super().handle_subscribe(message)


class LegacyWS(BaseGraphQLWSHandler[Any, Any]):
    """graphql-ws, the protocol before graphql-transport-ws."""

    async def handle_start(self, message: legacy_ws.StartMessage) -> None:
        limit = self.max_subscriptions_per_connection
        if (
            self.connection_acknowledged
            and message["id"] not in self.tasks
            and limit is not None
            and len(self.tasks) >= limit
        ):
            refused = legacy_ws.ErrorMessage(
                type="error", id=message["id"], payload=operation_limit_error(limit)
            )
            await self.send_message(refused)
            return
        await super().handle_start(message)

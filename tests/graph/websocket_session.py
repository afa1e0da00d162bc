"""A WebSocket connection to the view, driven in-process as the ASGI server would drive it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from graph.app import GraphQLApp
from graph.context import Services

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
STATUS = "subscription { pluginStatus { plugin status } }"


class Client:
    """One WebSocket connection to the view, as the ASGI server would make it."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outgoing: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.get()

    async def send(self, message: dict[str, Any]) -> None:
        self.outgoing.put_nowait(message)
        if message["type"] == "websocket.close":
            self.incoming.put_nowait({"type": "websocket.disconnect", "code": message["code"]})

    def say(self, message: dict[str, Any]) -> None:
        self.incoming.put_nowait({"type": "websocket.receive", "text": json.dumps(message)})

    async def heard(self) -> dict[str, Any]:
        """The next thing the server sent: a protocol message, or the close itself."""
        async with asyncio.timeout(10):
            sent = await self.outgoing.get()
        if sent["type"] == "websocket.send":
            message: dict[str, Any] = json.loads(sent["text"])
            return message
        return sent


@asynccontextmanager
async def connected(
    services: Services, protocol: str, token: str, *, max_operations: int = 100
) -> AsyncIterator[Client]:
    """A connection whose `connection_init` carried `token`, acknowledged; at most
    `max_operations` operations at once on it (strawberry's default is 100)."""
    app = GraphQLApp(services)
    app.max_subscriptions_per_connection = max_operations
    client = Client()
    scope = {
        "type": "websocket",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "scheme": "ws",
        "headers": [(b"host", b"test"), (b"sec-websocket-protocol", protocol.encode())],
        "subprotocols": [protocol],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }
    client.incoming.put_nowait({"type": "websocket.connect"})
    task = asyncio.create_task(app(scope, client.receive, client.send))
    try:
        assert (await client.heard())["type"] == "websocket.accept"
        client.say({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        assert (await client.heard())["type"] == "connection_ack"
        yield client
    finally:
        client.incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})
        async with asyncio.timeout(10):
            await task


def start(protocol: str, query: str, operation_id: str = "1") -> dict[str, Any]:
    """The message starting operation `operation_id` in `protocol`."""
    kind = "subscribe" if protocol == TRANSPORT_WS else "start"
    return {"id": operation_id, "type": kind, "payload": {"query": query}}

"""A WebSocket connection bound to its token, the view driven in-process as an ASGI application.

The wall clock the connection reads is moved past the token's expiry while the timer that
closes the connection at expiry still sleeps: what an operation started in that moment meets
is the check made on every operation.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from graph import websocket_auth
from graph.app import GraphQLApp
from graph.context import Services
from models import Repository
from runtime.auth import Role
from runtime.host import STATUS_CHANNEL

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
STATUS = "subscription { pluginStatus { plugin status } }"
ADD_REPOSITORY = 'mutation { addRepository(input: {name: "late", url: "file:///nowhere"}) { id } }'


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
async def connected(services: Services, protocol: str, token: str) -> AsyncIterator[Client]:
    app = GraphQLApp(services)
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


def start(protocol: str, query: str) -> dict[str, Any]:
    """The message starting operation `1` in `protocol`."""
    kind = "subscribe" if protocol == TRANSPORT_WS else "start"
    return {"id": "1", "type": kind, "payload": {"query": query}}


# graphql-ws carries subscriptions only; graphql-transport-ws mutations too.
REFUSED = {TRANSPORT_WS: ADD_REPOSITORY, LEGACY_WS: STATUS}


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_an_operation_started_once_the_token_has_expired_is_refused_and_the_socket_closed(
    services: Services, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    token = services.tokens.issue(Role.ADMIN, "ops", timedelta(seconds=60))
    async with connected(services, protocol, token) as client:
        later = time.time() + 61
        monkeypatch.setattr(websocket_auth, "time", SimpleNamespace(time=lambda: later))
        client.say(start(protocol, REFUSED[protocol]))
        closed = await client.heard()
    assert closed == {"type": "websocket.close", "code": 4403, "reason": "the token has expired"}
    assert not await Repository.filter(name="late").exists()


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_subscription_started_before_the_token_expires_streams(
    services: Services, protocol: str
) -> None:
    token = services.tokens.issue(Role.ADMIN, "ops", timedelta(seconds=60))
    async with connected(services, protocol, token) as client:
        client.say(start(protocol, STATUS))
        await asyncio.sleep(0.1)  # the subscription listens once its resolver has subscribed
        change = {"plugin": "p", "status": "ACTIVE", "at": datetime.now(UTC).isoformat()}
        await services.host.hub.publish(STATUS_CHANNEL, change)
        result = await client.heard()
    assert result["payload"] == {"data": {"pluginStatus": {"plugin": "p", "status": "ACTIVE"}}}

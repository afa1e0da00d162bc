"""A small graphql-transport-ws client for end-to-end tests, on the `websockets` package.

It authenticates in `connection_init`, answers the server's pings, and hands back protocol
messages as dictionaries. `small_buffer=True` connects through a socket with a tiny kernel
receive buffer and a short frame queue, so that a subscriber which stops reading makes the
server's side back up quickly (the kernel's automatic buffer sizing would otherwise absorb
megabytes on loopback).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect

PROTOCOL = "graphql-transport-ws"
SMALL_RECEIVE_BUFFER = 4096


class GraphQLWebSocket:
    """One connection; subscriptions are told apart by the ids the caller gives them."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(message))

    async def subscribe(
        self, operation_id: str, query: str, variables: dict[str, Any] | None = None
    ) -> None:
        payload: dict[str, Any] = {"query": query}
        if variables:
            payload["variables"] = variables
        await self.send({"id": operation_id, "type": "subscribe", "payload": payload})

    async def complete(self, operation_id: str) -> None:
        await self.send({"id": operation_id, "type": "complete"})

    async def receive(self, limit: float) -> dict[str, Any]:
        """The next message other than a ping (answered here); TimeoutError after `limit` s."""
        async with asyncio.timeout(limit):
            while True:
                raw = await self.connection.recv()
                message: dict[str, Any] = json.loads(raw)
                if message.get("type") == "ping":
                    await self.send({"type": "pong"})
                    continue
                return message

    async def ping(self, limit: float = 30) -> None:
        """A round trip: every message the server sent before the pong is received first."""
        await self.send({"type": "ping"})
        while True:
            message = await self.receive(limit)
            if message.get("type") == "pong":
                return


async def _small_buffer_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Set before connecting so the advertised window stays small (no autotuning).
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RECEIVE_BUFFER)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    return sock


@contextlib.asynccontextmanager
async def graphql_ws(
    url: str, token: str, *, small_buffer: bool = False, limit: float = 30
) -> AsyncIterator[GraphQLWebSocket]:
    """Connect, send connection_init with the bearer token, and wait for connection_ack."""
    options: dict[str, Any] = {
        "subprotocols": [PROTOCOL],
        "compression": None,  # sizes on the wire as the server produces them
        "max_size": None,
        "open_timeout": limit,
        "close_timeout": 5,
        "ping_interval": None,
    }
    if small_buffer:
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        options["sock"] = await _small_buffer_socket(parts.hostname, parts.port)
        options["max_queue"] = 2
    async with connect(url, **options) as connection:
        assert connection.subprotocol == PROTOCOL, connection.subprotocol
        client = GraphQLWebSocket(connection)
        await client.send(
            {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        )
        ack = await client.receive(limit)
        assert ack["type"] == "connection_ack", ack
        yield client

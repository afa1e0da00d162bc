"""What a client may hold of the server process before it has authenticated, and how long.

The server here runs with short limits (a second or two) so that the tests stay quick; each
limit has a setting, documented in docs/deploy.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from tests.conftest import create_database, drop_database, require_postgres, run_apart
from tests.e2e.conftest import Server, check_clean_exit, start_server

pytestmark = pytest.mark.e2e

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
MAX_BODY_BYTES = 256 * 1024
LIMITS = {
    "STREAMSPACE_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
    "STREAMSPACE_WS_INIT_TIMEOUT": "1",
    "STREAMSPACE_WS_INIT_MAX_BYTES": "4096",
}
# Far above any limit under test: only a server that never closes makes a test wait this long.
PATIENCE = 30.0


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def limited(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A running server with short connection limits, on each backend."""
    directory = tmp_path_factory.mktemp(f"limits-{request.param}")
    database: str | None = None
    url: str | None = None
    if request.param == "postgres":
        require_postgres()
        database = f"ssp_limits_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        url = run_apart(create_database(database))
    try:
        running = start_server(directory, request.param, url, **LIMITS)
        try:
            yield running
        finally:
            check_clean_exit(running, running.stop())
    finally:
        if database is not None:
            run_apart(drop_database(database))


@pytest.fixture
async def websocket(limited: Server) -> AsyncIterator[Any]:
    """A factory of raw WebSocket connections to the server, closed at the end."""
    opened: list[ClientConnection] = []

    async def open_one(protocol: str = TRANSPORT_WS) -> ClientConnection:
        connection = await connect(
            limited.ws_url, subprotocols=[Subprotocol(protocol)], compression=None, max_size=None
        )
        opened.append(connection)
        return connection

    yield open_one
    for connection in opened:
        await connection.close()


def announced_text_frame(length: int) -> bytes:
    """The header of a masked client text frame announcing `length` bytes; no payload follows."""
    return struct.pack("!BBQ", 0x81, 0x80 | 127, length) + os.urandom(4)


async def close_code(connection: ClientConnection) -> int | None:
    """Read until the server closes the connection; its close code."""
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(PATIENCE):
            while True:
                await connection.recv()
    return connection.close_code


async def initialised(connection: ClientConnection, token: str) -> None:
    init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
    await connection.send(json.dumps(init))
    async with asyncio.timeout(PATIENCE):
        assert '"connection_ack"' in str(await connection.recv())


# -- WebSocket: before connection_init ------------------------------------------------------------


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_socket_that_never_sends_connection_init_is_closed_4408(
    websocket: Any, protocol: str
) -> None:
    connection = await websocket(protocol)
    assert await close_code(connection) == 4408
    assert connection.close_reason == "Connection initialisation timeout"


async def test_a_large_frame_before_connection_init_is_refused_from_its_header(
    websocket: Any,
) -> None:
    connection = await websocket()
    # 15 MB announced, none of it sent: the server must not wait for it, nor buffer it.
    connection.transport.write(announced_text_frame(15_000_000))
    assert await close_code(connection) == 1009


async def test_after_connection_init_messages_may_be_as_large_as_a_request_body(
    websocket: Any, limited: Server
) -> None:
    connection = await websocket()
    await initialised(connection, limited.admin_token)
    padding = "x" * (MAX_BODY_BYTES - 1024)
    await connection.send(json.dumps({"type": "ping", "payload": {"padding": padding}}))
    async with asyncio.timeout(PATIENCE):
        assert '"pong"' in str(await connection.recv())
    connection.transport.write(announced_text_frame(MAX_BODY_BYTES + 1))
    assert await close_code(connection) == 1009

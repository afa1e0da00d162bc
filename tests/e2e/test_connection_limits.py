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
    "STREAMSPACE_HEADER_TIMEOUT": "2",
    "STREAMSPACE_BODY_TIMEOUT": "2",
}
TRICKLE_PAUSE = 0.3  # seconds between two bytes of a slow client
SLOW_CLIENTS = 50
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


# -- HTTP: slow headers and bodies ----------------------------------------------------------------


async def healthy(server: Server) -> bool:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
    try:
        return (await answer(reader)).startswith(b"HTTP/1.1 200")
    finally:
        writer.close()


async def answer(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    async with asyncio.timeout(PATIENCE):
        return await reader.read()


async def slow_client(server: Server, head: bytes, drip: bytes) -> bytes:
    """Send `head`, then `drip` a byte at a time, slowly; what the server answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(head)

    async def trickle() -> None:
        for byte in drip:
            if writer.is_closing():
                return
            writer.write(bytes([byte]))
            await asyncio.sleep(TRICKLE_PAUSE)

    trickling = asyncio.create_task(trickle())
    try:
        return await answer(reader)
    finally:
        trickling.cancel()
        writer.close()


def slow_body(server: Server) -> Any:
    body = json.dumps({"query": "{ viewer { subject } }"}).encode()
    head = (
        b"POST /graphql HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n"
        b"authorization: Bearer %s\r\ncontent-length: %d\r\n\r\n"
        % (server.admin_token.encode(), len(body))
    )
    return slow_client(server, head, body)


def slow_headers(server: Server) -> Any:
    return slow_client(server, b"GET /healthz HTTP/1.1\r\n", b"x-slow: " + b"y" * 200)


async def test_a_body_trickled_slower_than_the_limit_gets_408_and_the_server_keeps_answering(
    limited: Server,
) -> None:
    trickled = asyncio.create_task(slow_body(limited))
    assert await healthy(limited)
    answered = await trickled
    assert answered.startswith(b"HTTP/1.1 408"), answered
    assert await healthy(limited)


async def test_headers_trickled_slower_than_the_limit_get_408_and_the_server_keeps_answering(
    limited: Server,
) -> None:
    trickled = asyncio.create_task(slow_headers(limited))
    assert await healthy(limited)
    answered = await trickled
    assert answered.startswith(b"HTTP/1.1 408"), answered
    assert await healthy(limited)


async def test_many_slow_clients_are_all_refused_while_the_server_keeps_answering(
    limited: Server,
) -> None:
    clients = [slow_body(limited) for _ in range(SLOW_CLIENTS // 2)]
    clients += [slow_headers(limited) for _ in range(SLOW_CLIENTS // 2)]
    trickled = asyncio.gather(*clients)
    assert await healthy(limited)
    answers = await trickled
    assert all(answered.startswith(b"HTTP/1.1 408") for answered in answers), answers
    assert await healthy(limited)

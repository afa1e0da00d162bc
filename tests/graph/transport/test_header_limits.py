"""A request's headers within a time and a size, served for real by uvicorn on 127.0.0.1.

These tests lean on what `HeaderLimitedProtocol` takes from uvicorn's httptools protocol (its
parser callbacks, request cycle and keep-alive): a uvicorn release that changes them fails
here rather than in production.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from graph.transport.header_limits import HeaderLimitedProtocol

TIMEOUT = 0.5
MAX_HEADER_BYTES = 4096
# Far above the limits under test: only a server that never answers makes a test wait this long.
PATIENCE = 30.0


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    body = b"hello"
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"5")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@asynccontextmanager
async def serving() -> AsyncIterator[tuple[str, int]]:
    protocol = HeaderLimitedProtocol.limited(
        header_timeout=TIMEOUT, max_header_bytes=MAX_HEADER_BYTES
    )
    config = uvicorn.Config(hello, http=protocol, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    listening = socket.create_server(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    task = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        await task
        listening.close()


async def answer(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    async with asyncio.timeout(PATIENCE):
        return await reader.read()


async def get(address: tuple[str, int]) -> bytes:
    reader, writer = await asyncio.open_connection(*address)
    writer.write(b"GET / HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
    try:
        return await answer(reader)
    finally:
        writer.close()


async def test_a_prompt_request_is_answered() -> None:
    async with serving() as address:
        assert (await get(address)).startswith(b"HTTP/1.1 200")


async def test_headers_trickled_slower_than_the_limit_get_408_while_others_are_served() -> None:
    async with serving() as address:
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"GET / HTTP/1.1\r\nhost: test\r\n")

        async def trickle() -> None:
            while not writer.is_closing():
                writer.write(b"x")
                await asyncio.sleep(TIMEOUT / 5)

        trickling = asyncio.create_task(trickle())
        try:
            served = await get(address)  # another client meanwhile
            refused = await answer(reader)
        finally:
            trickling.cancel()
            writer.close()
    assert served.startswith(b"HTTP/1.1 200")
    assert refused.startswith(b"HTTP/1.1 408")
    assert b"connection: close" in refused.lower()


async def test_a_connection_that_sends_nothing_is_closed_after_the_limit() -> None:
    async with serving() as address:
        reader, writer = await asyncio.open_connection(*address)
        try:
            assert (await answer(reader)).startswith(b"HTTP/1.1 408")
        finally:
            writer.close()


async def test_headers_larger_than_the_limit_get_431() -> None:
    async with serving() as address:
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"GET / HTTP/1.1\r\nhost: test\r\nx-padding: ")
        try:
            for _ in range(4):  # each write is read apart from the one before
                await asyncio.sleep(0.05)
                writer.write(b"x" * MAX_HEADER_BYTES)
            refused = await answer(reader)
        finally:
            writer.close()
    assert refused.startswith(b"HTTP/1.1 431")


async def test_a_kept_alive_connection_serves_requests_one_after_another() -> None:
    async with serving() as address:
        reader, writer = await asyncio.open_connection(*address)
        try:
            for _ in range(3):
                writer.write(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
                async with asyncio.timeout(PATIENCE):
                    head = await reader.readuntil(b"\r\n\r\n")
                    assert head.startswith(b"HTTP/1.1 200")
                    assert await reader.readexactly(5) == b"hello"
                await asyncio.sleep(TIMEOUT * 1.5)  # idle between requests is keep-alive's
        finally:
            writer.close()

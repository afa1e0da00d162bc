"""A request's body within a time: `BodyDeadline` in front of a Starlette app, served by uvicorn."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from graph.transport.body_deadline import BodyDeadline

TIMEOUT = 0.5
PATIENCE = 30.0  # far above the limit: only a server that never answers makes a test wait this


async def echo_length(request: Request) -> Response:
    return PlainTextResponse(str(len(await request.body())))


@asynccontextmanager
async def serving() -> AsyncIterator[tuple[str, int]]:
    app = Starlette(
        routes=[Route("/", echo_length, methods=["POST"])],
        middleware=[Middleware(BodyDeadline, seconds=TIMEOUT)],
    )
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off"))
    listening = socket.create_server(("127.0.0.1", 0))
    task = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        yield "127.0.0.1", listening.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        listening.close()


def post_head(length: int) -> bytes:
    return b"POST / HTTP/1.1\r\nhost: test\r\ncontent-length: %d\r\n\r\n" % length


async def answer(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(PATIENCE):
        return await reader.read()


async def test_a_body_that_arrives_in_time_is_read_whole() -> None:
    async with serving() as address:
        reader, writer = await asyncio.open_connection(*address)
        writer.write(post_head(10_000) + b"x" * 10_000)
        writer.write_eof()
        try:
            response = await answer(reader)
        finally:
            writer.close()
    assert response.startswith(b"HTTP/1.1 200")
    assert response.endswith(b"10000")


async def test_a_body_trickled_slower_than_the_limit_gets_408_and_the_connection_closes() -> None:
    async with serving() as address:
        reader, writer = await asyncio.open_connection(*address)
        writer.write(post_head(1000))

        async def trickle() -> None:
            while not writer.is_closing():
                writer.write(b"x")
                await asyncio.sleep(TIMEOUT / 5)

        trickling = asyncio.create_task(trickle())
        try:
            response = await answer(reader)  # read() ends when the server closes
        finally:
            trickling.cancel()
            writer.close()
    assert response.startswith(b"HTTP/1.1 408")
    assert b"connection: close" in response.lower()
    assert b"did not arrive in time" in response


async def test_a_body_that_stops_arriving_gets_408() -> None:
    async with serving() as address:
        reader, writer = await asyncio.open_connection(*address)
        writer.write(post_head(1000) + b"x" * 10)
        try:
            response = await answer(reader)
        finally:
            writer.close()
    assert response.startswith(b"HTTP/1.1 408")

"""Prepared text frames through uvicorn's WebSocket protocol, served for real on 127.0.0.1.

These tests lean on what `FrameWritingProtocol` takes from uvicorn's sans-I/O protocol (its
handshake, scope, connection state and flow control): a uvicorn release that changes them
fails here rather than in production.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from graph._fast.websocket_frames import (
    FRAMES_EXTENSION,
    FrameWritingProtocol,
    frame_writer,
    lift_max_size,
    text_frame,
)

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


@asynccontextmanager
async def serving(
    app: App, protocol: type[FrameWritingProtocol] = FrameWritingProtocol, **options: Any
) -> AsyncIterator[str]:
    config = uvicorn.Config(app, ws=protocol, log_config=None, lifespan="off", **options)
    server = uvicorn.Server(config)
    # Listening before uvicorn starts: a client that connects first waits in the backlog.
    listening = socket.create_server(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    task = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        yield f"ws://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        await task
        listening.close()


async def accepted(receive: Any, send: Any) -> None:
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_text_frame_is_what_websockets_serialises(size: int) -> None:
    data = ("é" * size).encode()[:size]
    expected = Frame(Opcode.TEXT, data).serialize(mask=False, extensions=[])
    assert text_frame(data) == expected


def test_a_scope_without_the_extension_has_no_writer() -> None:
    assert frame_writer({"type": "websocket"}) is None
    assert frame_writer({"extensions": {"websocket.http.response": {}}}) is None
    assert frame_writer({"extensions": {FRAMES_EXTENSION: {"write": "not callable"}}}) is None


async def test_prepared_frames_and_sent_messages_arrive_in_the_order_given() -> None:
    results: list[bool] = []
    writes: list[int] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await accepted(receive, send)
        write = frame_writer(scope)
        assert write is not None
        transport = write.__self__.transport  # type: ignore[attr-defined]
        writelines = transport.writelines
        transport.writelines = lambda frames: (writes.append(len(frames)), writelines(frames))
        results.append(write(text_frame(b"one")))
        results.append(write(text_frame("twó".encode())))
        await send({"type": "websocket.send", "text": "three"})  # after the two before it
        results.append(write(text_frame(b"four")))
        assert (await receive())["text"] == "bye"
        await send({"type": "websocket.close", "code": 1000})
        results.append(write(text_frame(b"after the close")))

    async with serving(app) as url, connect(url, compression=None) as client:
        assert [await client.recv() for _ in range(4)] == ["one", "twó", "three", "four"]
        await client.send("bye")
        with pytest.raises(ConnectionClosed):
            await client.recv()
        assert client.close_code == 1000
    assert results == [True, True, True, False]
    assert writes == [2, 1]  # the frames of one turn in one write


async def test_frames_are_refused_when_the_connection_compresses() -> None:
    results: list[bool] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await accepted(receive, send)
        write = frame_writer(scope)
        assert write is not None
        results.append(write(text_frame(b"raw")))
        await send({"type": "websocket.send", "text": "compressed"})
        await receive()

    async with serving(app) as url, connect(url, compression="deflate") as client:
        assert await client.recv() == "compressed"
    assert results == [False]


async def test_frames_are_refused_while_the_socket_asks_writers_to_wait() -> None:
    results: list[bool] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await accepted(receive, send)
        write = frame_writer(scope)
        assert write is not None
        protocol = write.__self__  # type: ignore[attr-defined]
        protocol.pause_writing()
        results.append(write(text_frame(b"held")))
        protocol.resume_writing()
        results.append(write(text_frame(b"sent")))
        await receive()

    async with serving(app) as url, connect(url, compression=None) as client:
        assert await client.recv() == "sent"
    assert results == [False, True]


async def test_frames_queued_before_a_shutdown_go_before_its_close_frame() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await accepted(receive, send)
        write = frame_writer(scope)
        assert write is not None
        assert write(text_frame(b"last words"))
        write.__self__.shutdown()  # type: ignore[attr-defined]
        await receive()

    async with serving(app) as url, connect(url, compression=None) as client:
        assert await client.recv() == "last words"
        with pytest.raises(ConnectionClosed):
            await client.recv()
        assert client.close_code == 1012


# -- what a client may send, before and after the application lifts the cap -------------------


def announced_text_frame(length: int) -> bytes:
    """The header of a masked client text frame announcing `length` bytes (its payload unsent)."""
    return struct.pack("!BBQ", 0x81, 0x80 | 127, length) + os.urandom(4)


async def closed_code(client: Any) -> int | None:
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(10):
            while True:
                await client.recv()
    code: int | None = client.close_code
    return code


def echo(lifts: bool, writers: list[object] | None = None) -> App:
    """Echoes each message's length; lifts the cap first when `lifts`; notes the connection's
    frame writer in `writers`."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await accepted(receive, send)
        if writers is not None:
            writers.append(frame_writer(scope))
        if lifts:
            assert lift_max_size(scope)
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": str(len(message["text"]))})

    return app


async def test_a_message_over_the_initial_cap_is_refused_from_its_header() -> None:
    protocol = FrameWritingProtocol.capped_before_init(1024)
    async with serving(echo(lifts=False), protocol) as url, connect(url) as client:
        await client.send("x" * 1024)
        assert await client.recv() == "1024"
        # Only the header goes out: the server closes without waiting for 15 MB to arrive.
        client.transport.write(announced_text_frame(15_000_000))
        assert await closed_code(client) == 1009


async def test_without_the_fast_paths_no_frame_writer_is_offered_and_the_cap_holds() -> None:
    writers: list[object] = []
    protocol = FrameWritingProtocol.capped_before_init(1024, frames=False)
    async with serving(echo(False, writers), protocol) as url, connect(url) as client:
        await client.send("x" * 1024)
        assert await client.recv() == "1024"
        client.transport.write(announced_text_frame(15_000_000))
        assert await closed_code(client) == 1009
    assert writers == [None]


@pytest.mark.parametrize("frames", [True, False], ids=["fast paths", "no fast paths"])
async def test_once_lifted_messages_may_be_as_large_as_ws_max_size_and_no_larger(
    frames: bool,
) -> None:
    protocol = FrameWritingProtocol.capped_before_init(1024, frames=frames)
    served = serving(echo(lifts=True), protocol, ws_max_size=4096)
    async with served as url, connect(url) as client:
        await client.send("x" * 4096)
        assert await client.recv() == "4096"
        client.transport.write(announced_text_frame(4097))
        assert await closed_code(client) == 1009


async def test_the_initial_cap_is_never_above_ws_max_size() -> None:
    protocol = FrameWritingProtocol.capped_before_init(1 << 20)
    served = serving(echo(lifts=False), protocol, ws_max_size=2048)
    async with served as url, connect(url) as client:
        client.transport.write(announced_text_frame(2049))
        assert await closed_code(client) == 1009


def test_a_scope_without_the_limits_extension_cannot_be_lifted() -> None:
    assert not lift_max_size({"type": "websocket"})

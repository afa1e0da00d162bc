"""Prepared text frames through uvicorn's WebSocket protocol, served for real on 127.0.0.1.

These tests lean on what `FrameWritingProtocol` takes from uvicorn's sans-I/O protocol (its
handshake, scope, connection state and flow control): a uvicorn release that changes them
fails here rather than in production.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from graph.websocket_frames import (
    FRAMES_EXTENSION,
    FrameWritingProtocol,
    frame_writer,
    text_frame,
)

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


@asynccontextmanager
async def serving(app: App) -> AsyncIterator[str]:
    config = uvicorn.Config(app, ws=FrameWritingProtocol, log_config=None, lifespan="off")
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

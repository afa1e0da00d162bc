"""Prepared WebSocket text frames written straight to the connection, several per write.

Every frame an ASGI application sends goes through Starlette's state checks, uvicorn's `send`
(a coroutine that waits on an event and encodes the text again) and the websockets library's
frame serialisation, and becomes a socket write of its own. When one message goes to a thousand
connections that path costs more than the message. `FrameWritingProtocol`, uvicorn's sans-I/O
WebSocket protocol with one addition, offers the application a function (in the connection's
scope, under `FRAMES_EXTENSION`) that takes a frame made by `text_frame` and queues it; the
frames queued on a connection during one turn of the event loop reach the socket in one write.

The function refuses a frame (returns False) whenever the ordinary path has to be taken: a
compression extension was negotiated (frames are then compressed per connection), the
connection is not open, or the socket asked writers to wait. A message sent the ordinary way
first writes the frames queued before it, so frames leave in the order they were handed in.
Servers other than this protocol offer no such function; `frame_writer` is then None and the
application sends as usual.

It also caps what a client may send before it has authenticated: until the application calls
`lift_max_size(scope)` (once `connection_init` carried a good token), a message may be at most
`initial_max_size` bytes, and after that uvicorn's `ws_max_size`. Both are enforced by the
frame parser from a frame's header, before its payload is read: a larger one closes the
connection with 1009.

Example:
    uvicorn.Config(app, ws=FrameWritingProtocol)
    write = frame_writer(websocket.scope)
    if write is None or not write(text_frame(b'{"type":"ping"}')):
        await websocket.send_text('{"type":"ping"}')
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request
from websockets.protocol import State

if TYPE_CHECKING:  # uvicorn's private module: for the type checker only, never imported
    from uvicorn._types import ASGISendEvent

FRAMES_EXTENSION = "streamspace.websocket.frames"
LIMITS_EXTENSION = "streamspace.websocket.limits"

# Takes a whole frame made by text_frame: True, queued; False, send the message the usual way.
FrameWriter = Callable[[bytes], bool]

_FIN_TEXT = 0x81  # FIN set, opcode 1 (text); no mask bit: server frames are never masked
_LENGTH_16 = struct.Struct("!BBH")
_LENGTH_64 = struct.Struct("!BBQ")


def text_frame(data: bytes) -> bytes:
    """One unfragmented, unmasked text frame carrying `data` (UTF-8), as RFC 6455 lays it out."""
    length = len(data)
    if length < 126:
        return bytes((_FIN_TEXT, length)) + data
    if length < 1 << 16:
        return _LENGTH_16.pack(_FIN_TEXT, 126, length) + data
    return _LENGTH_64.pack(_FIN_TEXT, 127, length) + data


def frame_writer(scope: Mapping[str, Any]) -> FrameWriter | None:
    """The connection's frame writer, or None when its server offers none."""
    extension = (scope.get("extensions") or {}).get(FRAMES_EXTENSION)
    if not isinstance(extension, dict):
        return None
    write = extension.get("write")
    return write if callable(write) else None


def lift_max_size(scope: Mapping[str, Any]) -> bool:
    """Let the connection's client send messages up to the server's `ws_max_size`; False when
    its server offers no such thing."""
    extension = (scope.get("extensions") or {}).get(LIMITS_EXTENSION)
    lift = extension.get("lift") if isinstance(extension, dict) else None
    if not callable(lift):
        return False
    lift()
    return True


class FrameWritingProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, offering the application a `FrameWriter`, and
    capping messages at `initial_max_size` bytes until the application lifts the cap."""

    # A connection_init message is small; anything bigger before it is not a client of ours.
    initial_max_size = 65_536
    # False (fast paths off): no frame writer is offered, every message takes the ASGI path;
    # the cap before connection_init, a limit rather than a speed-up, stays.
    offers_frames = True

    @classmethod
    def capped_before_init(cls, size: int, *, frames: bool = True) -> type[FrameWritingProtocol]:
        """This protocol with `initial_max_size` set to `size`, offering the frame writer
        unless `frames` is False (uvicorn takes a class)."""
        return type(cls.__name__, (cls,), {"initial_max_size": size, "offers_frames": frames})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._queued: list[bytes] = []
        # websockets checks this against each frame's announced length before reading it.
        self.conn.max_message_size = min(self.initial_max_size, self.config.ws_max_size)

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        # Set when the handshake is accepted; the application's task has not run yet.
        scope: Any = self.__dict__.get("scope")
        if scope is not None:
            extensions = scope.setdefault("extensions", {})
            if self.offers_frames:
                extensions[FRAMES_EXTENSION] = {"write": self.write_frame}
            extensions[LIMITS_EXTENSION] = {"lift": self.lift_max_size}

    def lift_max_size(self) -> None:
        """Messages may be as large as uvicorn's `ws_max_size` from now on."""
        self.conn.max_message_size = self.config.ws_max_size

    def write_frame(self, frame: bytes) -> bool:
        """Queue `frame` for the end of this turn of the loop; False when it must not be."""
        conn = self.conn
        if (
            not self.handshake_complete
            or self.close_sent
            or self.disconnected
            or self.initial_response is not None
            or not self.writable.is_set()
            or conn.extensions
            or conn.state is not State.OPEN
            or conn.expect_continuation_frame
        ):
            return False
        if not self._queued:
            self.loop.call_soon(self.write_queued)
        self._queued.append(frame)
        return True

    def write_queued(self) -> None:
        """Write the frames queued so far, in one write."""
        frames = self._queued
        if not frames:
            return
        self._queued = []
        # A close frame already went out (uvicorn's own, on shutdown or a keepalive timeout):
        # nothing may follow it, and the peer is leaving anyway.
        if self.conn.state is State.OPEN and not self.transport.is_closing():
            self.transport.writelines(frames)

    async def send(self, message: ASGISendEvent) -> None:
        self.write_queued()  # what was queued before this message goes before it
        await super().send(message)

    def shutdown(self) -> None:
        self.write_queued()  # before the close frame uvicorn writes
        super().shutdown()

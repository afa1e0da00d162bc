"""Subscription messages to many WebSocket subscribers at the cost of a frame each.

Strawberry sends each subscriber's message from that subscriber's own task, through a chain of
async generators, and encodes it to JSON there. With a thousand subscribers of a channel, that
is a thousand task wake-ups, chains and encodings of the same payload for every message. This
cuts it down, without changing a byte of what a client receives:

- the payload of a `next` message carrying a shared result (graph/_fast/shared_results.py) is
  encoded once, and each subscriber's message is its id and type around that text;
- while a graphql-transport-ws subscriber waits for its next message, the hub hands the message
  to `direct_delivery`'s function in the publisher's task: it filters, takes the shared result
  (executing it if this is the first subscriber to need it; when that waits on the database,
  the hub asks again once it is made) and writes the frame at once. The subscriber's task is
  not woken. Whatever cannot go that way (an error, a gap notice, a send that must wait for
  the socket) goes through the subscriber's task, in order, as before;
- messages that queue behind one being made are executed at once too (the hub's `prepare`),
  so that once the first is made the rest are ready and go out with it;
- served by `FrameWritingProtocol` (graph/_fast/websocket_frames.py), such a frame skips the ASGI
  send path: subscribers handed a message one after another with the same operation id get
  the same frame, built once, and the frames a connection gets during one turn of the loop
  leave in one socket write.

A view whose `fast_paths` attribute is False (the server's `--no-fast-paths`) gets none of
this: its adapter sends as Strawberry's, its handler hands the hub no direct delivery.

Example:
    class View(GraphQL):
        websocket_adapter_class = WebSocketAdapter
        graphql_transport_ws_handler_class = TransportWSHandler
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Mapping
from contextvars import ContextVar
from typing import Any, NamedTuple, TypeVar

from starlette.websockets import WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)

from graph._fast.shared_results import shared_payload, shared_root, subscription_executor
from graph._fast.websocket_frames import frame_writer, text_frame
from runtime.broadcast.hub import Direct, Prepare

log = logging.getLogger(__name__)

T = TypeVar("T")

_PAYLOAD_SLOT = "null}"


def fast_paths_of(view: object) -> bool:
    """Whether the view (graph/app.py's, which reads the setting once) lets the fast paths run."""
    return getattr(view, "fast_paths", True) is not False


def next_prefix(encode: Callable[[object], str | bytes], operation_id: str) -> str | None:
    """The text of operation `operation_id`'s `next` message up to its payload.

    Taken from the encoder itself, so that prefix + payload + "}" is what it makes of the
    whole message; None when its output does not split that way.
    """
    text = encode({"id": operation_id, "type": "next", "payload": None})
    if not isinstance(text, str) or not text.endswith(_PAYLOAD_SLOT):
        return None
    return text[: -len(_PAYLOAD_SLOT)]


class WebSocketAdapter(ASGIWebSocketAdapter):
    """Strawberry's Starlette WebSocket adapter, sending shared payloads as encoded once, and
    frames sent by `send_text_now` before anything sent after them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unfinished: asyncio.Future[None] | None = None
        self._fast = fast_paths_of(self.view)
        self._write_frame = frame_writer(self.ws.scope) if self._fast else None

    async def send_json(self, message: Mapping[str, object]) -> None:
        if not self._fast:
            await super().send_json(message)
            return
        await self._after_unfinished()
        text = self._next_text(message)
        if text is None:
            await super().send_json(message)
            return
        try:
            await self.ws.send_text(text)
        except WebSocketDisconnect as error:
            raise WebSocketDisconnected from error

    async def close(self, code: int, reason: str) -> None:
        """Close with `code` and `reason`, once: a socket already closed or gone is left so."""
        if self.ws.application_state is not WebSocketState.CONNECTED:
            return
        with contextlib.suppress(WebSocketDisconnect):
            await super().close(code, reason)

    def send_text_now(self, *parts: str) -> bool:
        """Send the text `parts` make as one frame from the calling task; False when it could
        not be sent from here.

        The frame is handed to the connection at once unless the socket asks the sender to
        wait; then the rest of the send goes on in a task, and every later send waits for it.
        """
        if self._unfinished is not None and not self._unfinished.done():
            return False
        write = self._write_frame
        if write is not None and write(_frame_of(parts)):
            return True
        try:
            self._unfinished = run_eagerly(self.ws.send_text("".join(parts)))
        except Exception:
            # Nothing was sent: the subscriber's task sends it and meets the same error there.
            return False
        return True

    async def _after_unfinished(self) -> None:
        unfinished = self._unfinished
        if unfinished is not None:
            self._unfinished = None
            # A failed send shows again, as itself, on this one.
            with contextlib.suppress(Exception):
                await asyncio.shield(unfinished)

    def _next_text(self, message: Mapping[str, object]) -> str | None:
        payload = message.get("payload")
        if message.get("type") != "next" or not isinstance(payload, dict) or len(payload) != 1:
            return None
        operation_id = message.get("id")
        if "data" not in payload or not isinstance(operation_id, str):
            return None
        encode = self.view.encode_json
        text = shared_payload(payload["data"], encode)  # type: ignore[arg-type]
        prefix = next_prefix(encode, operation_id) if text is not None else None
        return None if prefix is None or text is None else prefix + text + "}"


# Frames of the messages being fanned out now. A backlog goes to one subscriber after another,
# each getting every queued message; subscribers of an operation with the same id (clients
# often number theirs from 1) get the same frames.
_frames: dict[tuple[str, ...], bytes] = {}
FRAMES_KEPT = 512


def _frame_of(parts: tuple[str, ...]) -> bytes:
    """The text frame of the text `parts` make."""
    frame = _frames.get(parts)
    if frame is None:
        frame = text_frame("".join(parts).encode())
        if len(_frames) >= FRAMES_KEPT:
            _frames.clear()  # what is fanned out now is made again once, not kept forever
        _frames[parts] = frame
    return frame


def run_eagerly(coroutine: Coroutine[Any, Any, T]) -> asyncio.Future[T] | None:
    """Run `coroutine` in the calling task until it first waits; None when it finished.

    If it waits, a task resumes it each time what it waits on is done, as a task running it
    from the start would have, and that task is returned. An exception raised before the
    first wait propagates here.
    """
    try:
        waiting_on = coroutine.send(None)
    except StopIteration:
        return None
    task = asyncio.ensure_future(_resume(coroutine, waiting_on))
    task.add_done_callback(_retrieve)
    return task


async def _resume(coroutine: Coroutine[Any, Any, T], waiting_on: Any) -> T:
    try:
        while True:
            if asyncio.isfuture(waiting_on):
                await asyncio.wait({waiting_on})
            else:  # a bare yield: give the loop one turn
                await asyncio.sleep(0)
            try:
                waiting_on = coroutine.send(None)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
    finally:
        coroutine.close()


def _retrieve(task: asyncio.Future[Any]) -> None:
    # Whoever sends next sees a failure; nobody may be left to, so never let it go unretrieved.
    if not task.cancelled():
        task.exception()


class NextSender:
    """Sends `next` messages of one graphql-transport-ws operation around shared payloads."""

    __slots__ = ("_handler", "_operation", "_prefix", "encode")

    def __init__(
        self,
        handler: BaseGraphQLTransportWSHandler[Any, Any],
        operation: Operation[Any, Any],
    ) -> None:
        self._handler = handler
        self._operation = operation
        self.encode: Callable[[object], Any] = handler.view.encode_json
        self._prefix = next_prefix(self.encode, operation.id)

    def send(self, payload: str) -> bool:
        """True when the message went out, or will never be due (the operation ended)."""
        operation = self._operation
        if self._handler.operations.get(operation.id) is not operation or operation.completed:
            return True
        websocket = self._handler.websocket
        if self._prefix is None or not isinstance(websocket, WebSocketAdapter):
            return False
        return websocket.send_text_now(self._prefix, payload, "}")


_sender: ContextVar[NextSender | None] = ContextVar("graphql_transport_ws_sender", default=None)


class TransportWSHandler(BaseGraphQLTransportWSHandler[Any, Any]):
    """Strawberry's graphql-transport-ws handler; each operation's task knows its sender."""

    async def run_operation(self, operation: Operation[Any, Any]) -> None:
        # The operation's own task: the value is seen by its resolvers, and by nothing else.
        if fast_paths_of(self.view):
            _sender.set(NextSender(self, operation))
        await super().run_operation(operation)


class DirectDelivery(NamedTuple):
    """What the hub may hand a subscriber's messages to (see `Inbox.deliver_directly`)."""

    deliver: Direct
    prepare: Prepare


def direct_delivery(
    info: Any, keep: Callable[[dict[str, Any]], bool], convert: Callable[[dict[str, Any]], Any]
) -> DirectDelivery | None:
    """What the hub may hand this subscriber's messages to (see runtime/broadcast/hub.py), or None.

    Only for a subscription run by `TransportWSHandler` with the shared-result executor;
    `keep` filters hub messages and `convert` makes the shared root of one, as the resolver
    does with what it reads. What `keep` decides may depend on the operation's arguments
    only, as results are shared by operation.
    """
    sender = _sender.get()
    executor = subscription_executor()
    if sender is None or executor is None:
        return None
    if executor.operation is not info.operation or executor.context_value is not info.context:
        return None  # not this resolver's operation: leave it to the reading task
    encode = sender.encode

    def deliver(data: dict[str, Any]) -> bool | asyncio.Future[Any]:
        if not keep(data):
            return True
        result = executor.result_now(shared_root(data, convert))
        if isinstance(result, asyncio.Future):
            return result  # being made: the hub asks again when it is
        if result is None or result.errors or result.extensions or result.data is None:
            return False
        payload = shared_payload(result.data, encode)
        return payload is not None and sender.send(payload)

    key = executor.operation_key()

    def prepare(data: dict[str, Any]) -> None:
        # Executions of queued messages start now rather than each after the one before.
        global _last_prepared
        if _last_prepared[0] is data and _last_prepared[1] == key:
            return  # the subscriber before, of the same operation, started it
        _last_prepared = (data, key)
        if keep(data):  # keep depends on the operation's arguments only, so on the key
            executor.result_now(shared_root(data, convert))

    return DirectDelivery(deliver, prepare)


# The hub prepares a message for all its subscribers one after another.
_last_prepared: tuple[object, object] = (None, None)

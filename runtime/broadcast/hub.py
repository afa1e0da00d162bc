"""The fan-out hub: one broadcast subscription per channel per process, many local subscribers.

broadcaster hands every subscriber an unbounded queue, so one slow dashboard would hold every
message in memory. Here each subscriber gets a bounded buffer instead: when it is full, further
messages are counted, and the subscriber is told how many it missed before the next one it
receives. Publishing never waits for a subscriber. With the in-process broadcast (memory://)
every subscriber is in this process, so a message goes straight to the inboxes, neither encoded
nor queued on the way; with the fast paths off (`fast_paths=False`) it takes broadcaster's way,
encoded and read back like any backend's.

Example:
    >>> async def demo():
    ...     async with Hub("memory://") as hub:
    ...         async with hub.subscribe("status") as inbox:
    ...             await hub.publish("status", {"plugin": "echo"})
    ...             return await inbox.get()
    >>> import asyncio; asyncio.run(demo())
    Message(data={'plugin': 'echo'}, missed=0)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson
from broadcaster import Broadcast

log = logging.getLogger(__name__)

DEFAULT_BUFFER = 256
# Publishes in flight at once through a broadcast server: each is a round trip (Redis).
PUBLISH_AT_ONCE = 16

# Takes a message for a subscriber: True, done; False, the reader's; a future, ask again then.
Direct = Callable[[dict[str, Any]], "bool | asyncio.Future[Any]"]
# Told of a message queued behind one a Direct could not take yet; what it returns is ignored.
Prepare = Callable[[dict[str, Any]], object]


@dataclass(frozen=True)
class Message:
    """A published message, or (data None, missed > 0) a notice of messages dropped."""

    data: dict[str, Any] | None
    missed: int = 0


class Inbox:
    """One subscriber's bounded buffer.

    Messages that do not fit are dropped and counted; the count takes their place in the order
    the subscriber reads, so it learns of the gap exactly where it happened.
    """

    def __init__(self, size: int) -> None:
        # Items are messages, or an int: how many were dropped at that point.
        self._buffer: deque[dict[str, Any] | int] = deque()
        self._size = size
        self._dropped = 0
        self._ready = asyncio.Event()
        self._direct: Direct | None = None
        self._prepare: Prepare | None = None
        # True while the reader waits in get() and nothing was handed to it since.
        self._idle = False
        # What direct delivery of the first buffered message waits for.
        self._deferred_on: asyncio.Future[Any] | None = None
        self.closed = False

    def deliver_directly(self, deliver: Direct | None, prepare: Prepare | None = None) -> None:
        """Let `deliver` take messages at once, in the publisher's task, while the reader idles.

        With many subscribers, waking each one's task for every message costs more than the
        message itself. `deliver` returns True when it has dealt with the message, a future
        when it can once that future is done (the message waits in the buffer, the reader is
        not woken, and `deliver` is asked again then), and False (or raises) when the reader
        must handle the message itself, as without `deliver`. It is only asked while the
        reader waits with nothing else to handle, so it never overtakes a message or a gap
        notice the reader has yet to see.

        `prepare` is told of each message that queues behind one `deliver` waits for, so that
        what `deliver` will wait for on it can start meanwhile: once the first is done, the
        queue then goes out in one go rather than one wait per message. It must not deliver
        the message; what it returns is ignored, and what it raises is logged.
        """
        self._direct = deliver
        self._prepare = prepare

    def offer(self, data: dict[str, Any]) -> None:
        if self._deferred_on is not None:
            # Behind the deferred one; it goes on when that does.
            if self._put(data) and self._prepare is not None:
                try:
                    self._prepare(data)
                except Exception:
                    log.exception("preparing a direct delivery failed")
            return
        if self._idle and self._direct is not None and not (self._buffer or self._dropped):
            outcome = self._try_direct(data)
            if outcome is True:
                return
            self._put(data)
            if outcome is not False:
                self._defer(outcome)
                return
        else:
            self._put(data)
        self._wake()

    def report_gap(self, missed: int = 1) -> None:
        """Messages were lost before reaching this process (the broadcast link was down)."""
        self._dropped += missed
        self._close_gap()
        self._wake()

    def _put(self, data: dict[str, Any]) -> bool:
        """Buffer `data`; False when it was dropped (and counted) instead."""
        if len(self._buffer) >= self._size:
            self._dropped += 1
            return False
        self._close_gap()
        self._buffer.append(data)
        return True

    def _wake(self) -> None:
        self._idle = False
        self._ready.set()

    def _try_direct(self, data: dict[str, Any]) -> bool | asyncio.Future[Any]:
        assert self._direct is not None
        try:
            return self._direct(data)
        except Exception:
            log.exception("direct delivery failed; the subscriber reads the message itself")
            return False

    def _defer(self, until: asyncio.Future[Any]) -> None:
        self._deferred_on = until
        until.add_done_callback(self._resume_direct)

    def _resume_direct(self, until: asyncio.Future[Any]) -> None:
        if self._deferred_on is not until:
            return
        self._deferred_on = None
        if not self._idle or self.closed:
            return  # the reader was woken meanwhile (a gap): it reads the buffer itself
        while self._buffer:
            first = self._buffer[0]
            if isinstance(first, int):
                break
            outcome = self._try_direct(first)
            if outcome is False:
                break
            if outcome is not True:
                self._defer(outcome)
                return
            self._buffer.popleft()
        if self._buffer or self._dropped:
            self._wake()

    def _close_gap(self) -> None:
        if self._dropped:
            self._buffer.append(self._dropped)
            self._dropped = 0

    async def get(self) -> Message:
        while True:
            if not self._buffer:
                self._close_gap()
            if self._buffer:
                item = self._buffer.popleft()
                if isinstance(item, int):
                    return Message(data=None, missed=item)
                return Message(data=item)
            self._ready.clear()
            self._idle = True
            try:
                await self._ready.wait()
            finally:
                self._idle = False

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        while True:
            yield await self.get()


class Hub:
    """Publishes JSON messages on channels and fans them out to local inboxes."""

    def __init__(
        self,
        url: str = "memory://",
        *,
        broadcast: Broadcast | None = None,
        fast_paths: bool = True,
    ) -> None:
        self.backend: Any = backend_for(url) if broadcast is None else broadcast._backend
        self._broadcast = broadcast or Broadcast(backend=self.backend)
        self._inboxes: dict[str, set[Inbox]] = {}
        self._pumps: dict[str, asyncio.Task[None]] = {}
        self._ready: dict[str, asyncio.Event] = {}
        self._was_up = False
        self._shared = _is_shared(self.backend)
        # Through broadcaster (encoded, queued, read by a pump), or straight to the inboxes.
        self._through_broadcaster = self._shared or not fast_paths
        listeners = getattr(self.backend, "link_listeners", None)
        if listeners is not None:
            listeners.append(self._link_changed)

    @property
    def shared(self) -> bool:
        """True when other processes publish on the same channels (not memory://)."""
        return self._shared

    @property
    def link_up(self) -> bool:
        """False while the broadcast backend has lost its server (readiness reports it)."""
        return bool(getattr(self.backend, "up", True))

    def _link_changed(self, up: bool) -> None:
        first, self._was_up = not self._was_up, True
        if up and first:
            return  # the first connection is not a restoration
        if up:
            # What was published elsewhere while the link was down never reached us: say so.
            for inboxes in self._inboxes.values():
                for inbox in inboxes:
                    inbox.report_gap()
        log.warning("broadcast link %s", "restored" if up else "lost")

    async def __aenter__(self) -> Hub:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()

    async def connect(self) -> None:
        await self._broadcast.connect()

    async def disconnect(self) -> None:
        for task in self._pumps.values():
            task.cancel()
        for task in self._pumps.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._pumps.clear()
        await self._broadcast.disconnect()

    async def publish(self, channel: str, data: dict[str, Any]) -> bool:
        """Publish; False when the broadcast link refused it.

        The message is news about rows already written, so a lost one costs subscribers a gap
        notice (when the link returns), never data; the caller goes on. In-process, every
        subscriber is here: the message goes to their inboxes at once, as it is (subscribers
        share it, so neither they nor the publisher may change it afterwards).
        """
        if not self._through_broadcaster:
            self._offer(channel, data)
            return True
        try:
            await self._broadcast.publish(channel, orjson.dumps(data).decode())
        except Exception as error:
            log.warning("broadcast publish failed", extra={"channel": channel, "error": str(error)})
            return False
        return True

    async def publish_many(self, channel: str, messages: Sequence[dict[str, Any]]) -> None:
        """Publish several: through a broadcast server, up to PUBLISH_AT_ONCE round trips at
        once (those may arrive in any order); in-process, one after the other, as there is no
        round trip to overlap."""
        if not self._through_broadcaster:
            for message in messages:
                self._offer(channel, message)
            return
        for start in range(0, len(messages), PUBLISH_AT_ONCE):
            chunk = messages[start : start + PUBLISH_AT_ONCE]
            await asyncio.gather(*(self.publish(channel, message) for message in chunk))

    def subscriber_count(self) -> int:
        return sum(len(inboxes) for inboxes in self._inboxes.values())

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str, buffer: int = DEFAULT_BUFFER) -> AsyncIterator[Inbox]:
        inbox = Inbox(buffer)
        self._inboxes.setdefault(channel, set()).add(inbox)
        try:
            if self._through_broadcaster:
                await self._pump_ready(channel)
            yield inbox
        finally:
            inbox.closed = True
            self._inboxes[channel].discard(inbox)

    async def _pump_ready(self, channel: str) -> None:
        """Start the channel's pump unless it runs, and wait until it listens.

        A pump that ended (its subscription failed or the backend closed it) is started again
        rather than left to leave new subscribers waiting for nothing.
        """
        pump = self._pumps.get(channel)
        if pump is None or pump.done():
            self._ready[channel] = asyncio.Event()
            pump = asyncio.create_task(self._pump(channel), name=f"hub:{channel}")
            self._pumps[channel] = pump
        ready = self._ready[channel]
        if ready.is_set():
            return
        waiter = asyncio.ensure_future(ready.wait())
        try:
            await asyncio.wait({waiter, pump}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not ready.is_set():
            error = pump.exception() if not pump.cancelled() else None
            raise RuntimeError(f"the broadcast subscription to {channel!r} failed") from error

    async def _pump(self, channel: str) -> None:
        async with self._broadcast.subscribe(channel) as subscriber:
            self._ready[channel].set()
            # broadcaster types __aiter__ as returning an optional generator.
            async for event in cast(AsyncIterator[Any], subscriber):
                if event is None:
                    return
                try:
                    data = orjson.loads(event.message)
                except orjson.JSONDecodeError:
                    log.warning("dropped a message that is not JSON", extra={"channel": channel})
                    continue
                self._offer(channel, data)

    def _offer(self, channel: str, data: dict[str, Any]) -> None:
        for inbox in list(self._inboxes.get(channel, ())):
            inbox.offer(data)


def _is_shared(backend: Any) -> bool:
    from broadcaster._backends.memory import MemoryBackend

    return not isinstance(backend, MemoryBackend)


def backend_for(url: str) -> Any:
    """The broadcaster backend for a URL (memory:// embedded, redis:// across replicas)."""
    scheme = url.split("://", 1)[0]
    if scheme == "memory":
        from broadcaster._backends.memory import MemoryBackend

        return MemoryBackend(url)
    if scheme in {"redis", "rediss"}:
        from runtime.broadcast.redis import RedisBackend

        return RedisBackend(url)
    if scheme in {"postgres", "postgresql"}:
        from runtime.broadcast.postgres import PostgresBackend

        return PostgresBackend(url)
    raise ValueError(f"unsupported broadcast URL {url!r}: use memory:// or redis://HOST:PORT")

"""A broadcaster backend on PostgreSQL LISTEN/NOTIFY, for replicas without Redis.

broadcaster's own backend shares one connection between LISTEN and NOTIFY (concurrent publishes
fail with "another operation is in progress") and sends payloads whole, which NOTIFY refuses
over 8000 bytes. Here one dedicated connection listens and a small pool notifies; a message
larger than the envelope cap is stored in `broadcast_payloads` and its row id is sent instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

import asyncpg
import orjson
from broadcaster import Event

log = logging.getLogger(__name__)
LinkListener = Callable[[bool], None]
ENVELOPE_LIMIT = 7000  # bytes of NOTIFY payload, under PostgreSQL's 8000
MAX_BACKOFF = 5.0


def _dsn(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1]


class PostgresBackend:
    """Pub/sub over LISTEN/NOTIFY; `link_listeners` hear False when the link drops."""

    def __init__(self, url: str) -> None:
        self._dsn = _dsn(url)
        self._listener: asyncpg.Connection | None = None
        self._pool: asyncpg.Pool | None = None
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._channels: set[str] = set()
        self.up = False
        self.reconnects = 0
        self.link_listeners: list[LinkListener] = []

    async def connect(self) -> None:
        self._pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=4)
        await self._open_listener()
        self._set_up(True)

    async def disconnect(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
        if self._pool is not None:
            await self._pool.close()

    def _set_up(self, up: bool) -> None:
        if up == self.up:
            return
        self.up = up
        for listener in self.link_listeners:
            listener(up)

    async def _open_listener(self) -> None:
        self._listener = await asyncpg.connect(self._dsn)
        self._listener.add_termination_listener(lambda _: self._set_up(False))
        for channel in self._channels:
            await self._listener.add_listener(channel, self._received)

    def _received(self, _connection: Any, _pid: int, channel: str, payload: str) -> None:
        self._queue.put_nowait(Event(channel=channel, message=payload))

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        if self._listener is not None and not self._listener.is_closed():
            await self._listener.add_listener(channel, self._received)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        if self._listener is not None and not self._listener.is_closed():
            await self._listener.remove_listener(channel, self._received)

    async def publish(self, channel: str, message: Any) -> None:
        assert self._pool is not None
        text = message if isinstance(message, str) else orjson.dumps(message).decode()
        try:
            async with self._pool.acquire() as connection:
                if len(text.encode()) > ENVELOPE_LIMIT:
                    row_id = await connection.fetchval(
                        "INSERT INTO broadcast_payloads (channel, payload, created_at) "
                        "VALUES ($1, $2, now()) RETURNING id",
                        channel,
                        text,
                    )
                    text = orjson.dumps({"$ref": row_id}).decode()
                await connection.execute("SELECT pg_notify($1, $2)", channel, text)
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError):
            self._set_up(False)
            raise

    async def _reconnect(self) -> None:
        delay = 0.1
        while True:
            with contextlib.suppress(Exception):
                if self._listener is not None:
                    await self._listener.close()
            try:
                await self._open_listener()
                self.reconnects += 1
                self._set_up(True)
                log.info("broadcast link to PostgreSQL restored")
                return
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("broadcast link to PostgreSQL down", extra={"error": str(error)})
                await asyncio.sleep(delay + random.uniform(0, delay))
                delay = min(delay * 2, MAX_BACKOFF)

    async def _resolve(self, event: Event) -> Event:
        if not event.message.startswith('{"$ref":'):
            return event
        assert self._pool is not None
        reference = orjson.loads(event.message)["$ref"]
        async with self._pool.acquire() as connection:
            payload = await connection.fetchval(
                "SELECT payload FROM broadcast_payloads WHERE id = $1", reference
            )
        return Event(channel=event.channel, message=payload or "{}")

    async def next_published(self) -> Event:
        while True:
            if not self.up:
                await self._reconnect()
            try:
                event = await asyncio.wait_for(self._queue.get(), 1.0)
            except TimeoutError:
                continue
            return await self._resolve(event)

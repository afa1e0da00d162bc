"""A broadcaster backend on Redis pub/sub (redis.asyncio) that survives Redis restarts.

broadcaster's own Redis backend delivers nothing with redis-py 8 and never reports a dead
connection, so this one implements its interface (`Broadcast(backend=RedisBackend(url))`) and
adds what a production link needs: health checks, reconnect with backoff, resubscription, and
`link` callbacks so the hub can tell subscribers of a gap and fail readiness meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

import redis.asyncio as redis
from broadcaster import Event
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)
LinkListener = Callable[[bool], None]
_LINK_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
MAX_BACKOFF = 5.0


class RedisBackend:
    """Pub/sub on one Redis; `link_listeners` hear False when the link drops, True when back."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._client: redis.Redis | None = None
        self._pubsub: Any = None
        self._channels: set[str] = set()
        self.up = False
        self.reconnects = 0
        self.link_listeners: list[LinkListener] = []

    def _connect_client(self) -> None:
        self._client = redis.Redis.from_url(
            self._url, health_check_interval=5, socket_connect_timeout=3, socket_keepalive=True
        )
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)

    async def connect(self) -> None:
        self._connect_client()
        assert self._client is not None
        await self._client.ping()
        self._set_up(True)

    async def disconnect(self) -> None:
        if self._pubsub is not None:
            await self._pubsub.aclose()
        if self._client is not None:
            await self._client.aclose()

    def _set_up(self, up: bool) -> None:
        if up == self.up:
            return
        self.up = up
        for listener in self.link_listeners:
            listener(up)

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        try:
            await self._pubsub.subscribe(channel)
        except _LINK_ERRORS:
            self._set_up(False)  # next_published reconnects and subscribes again

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        try:
            await self._pubsub.unsubscribe(channel)
        except _LINK_ERRORS:
            self._set_up(False)

    async def publish(self, channel: str, message: Any) -> None:
        assert self._client is not None
        try:
            await self._client.publish(channel, message)
        except _LINK_ERRORS:
            self._set_up(False)
            raise

    async def _reconnect(self) -> None:
        delay = 0.1
        while True:
            # The old connection is broken already; nothing in it is worth saving.
            with contextlib.suppress(Exception):
                await self.disconnect()
            try:
                self._connect_client()
                assert self._client is not None
                await self._client.ping()
                if self._channels:
                    await self._pubsub.subscribe(*self._channels)
                self.reconnects += 1
                self._set_up(True)
                log.info("broadcast link to Redis restored", extra={"reconnects": self.reconnects})
                return
            except _LINK_ERRORS as error:
                log.warning("broadcast link to Redis down", extra={"error": str(error)})
                await asyncio.sleep(delay + random.uniform(0, delay))
                delay = min(delay * 2, MAX_BACKOFF)

    async def next_published(self) -> Event:
        while True:
            if not self.up:
                await self._reconnect()
            if not self._pubsub.subscribed:
                # get_message returns at once while nothing is subscribed; wait instead.
                await asyncio.sleep(0.05)
                continue
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except _LINK_ERRORS:
                self._set_up(False)
                continue
            if message is None or message.get("type") != "message":
                continue
            channel, data = message["channel"], message["data"]
            return Event(
                channel=channel.decode() if isinstance(channel, bytes) else channel,
                message=data.decode() if isinstance(data, bytes) else data,
            )

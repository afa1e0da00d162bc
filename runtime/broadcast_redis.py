"""A broadcaster backend on Redis pub/sub through redis.asyncio.

broadcaster's own Redis backend delivers nothing with redis-py 8, so this one implements its
interface (`Broadcast(backend=RedisBackend(url))`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as redis
from broadcaster import Event


class RedisBackend:
    def __init__(self, url: str) -> None:
        self._url = url
        self._client: redis.Redis | None = None
        self._pubsub: Any = None

    async def connect(self) -> None:
        self._client = redis.Redis.from_url(self._url, health_check_interval=10)
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        await self._client.ping()

    async def disconnect(self) -> None:
        if self._pubsub is not None:
            await self._pubsub.aclose()
        if self._client is not None:
            await self._client.aclose()

    async def subscribe(self, channel: str) -> None:
        await self._pubsub.subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        await self._pubsub.unsubscribe(channel)

    async def publish(self, channel: str, message: Any) -> None:
        assert self._client is not None
        await self._client.publish(channel, message)

    async def next_published(self) -> Event:
        while True:
            if not self._pubsub.subscribed:
                # get_message returns at once while nothing is subscribed; wait instead.
                await asyncio.sleep(0.05)
                continue
            message = await self._pubsub.get_message(timeout=1.0)
            if message is None or message.get("type") != "message":
                continue
            channel = message["channel"]
            data = message["data"]
            return Event(
                channel=channel.decode() if isinstance(channel, bytes) else channel,
                message=data.decode() if isinstance(data, bytes) else data,
            )

"""The digest queue: notices waiting in the plugin's storage for their window to close.

Each queued notice is a key of its own (`digest:<ns since epoch>:<random>`), so concurrent
hooks never overwrite one another's entries (storage has no atomic update), and the keys sort
by the time they were queued. The queue lives in storage, so a restart loses nothing: the
next load drains what was left.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

PREFIX = "digest:"
# One e-mail lists at most this many events; a longer queue goes out as several digests.
MAX_PER_DIGEST = 200


class Storage(Protocol):
    async def get(self, key: str, default: Any = None) -> Any: ...
    async def set(self, key: str, value: Any) -> None: ...
    async def delete(self, key: str) -> bool: ...
    async def keys(self, prefix: str = "") -> list[str]: ...


@dataclass(frozen=True)
class Queued:
    key: str
    item: Mapping[str, Any]


def queued_at(key: str) -> float:
    """Seconds since the epoch at which the entry `key` was queued."""
    return int(key[len(PREFIX) :].split(":", 1)[0]) / 1e9


class DigestQueue:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def put(self, item: Mapping[str, Any]) -> str:
        key = f"{PREFIX}{time.time_ns():020d}:{uuid.uuid4().hex}"
        await self._storage.set(key, dict(item))
        return key

    async def size(self) -> int:
        return len(await self._storage.keys(PREFIX))

    async def due(self, window: float, now: float | None = None) -> list[Queued]:
        """The oldest entries (at most MAX_PER_DIGEST) once the window opened by the oldest
        entry has closed; empty while it is still open."""
        keys = await self._storage.keys(PREFIX)
        if not keys or (now or time.time()) - queued_at(keys[0]) < window:
            return []
        batch = []
        for key in keys[:MAX_PER_DIGEST]:
            item = await self._storage.get(key)
            if isinstance(item, Mapping):
                batch.append(Queued(key, item))
            else:
                # Not written by this module (or cut short): it could never be rendered.
                await self._storage.delete(key)
        return batch

    async def remove(self, entries: list[Queued]) -> None:
        for entry in entries:
            await self._storage.delete(entry.key)

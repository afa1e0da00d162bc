"""aiosqlite as a version without the private API the one-trip insert uses would look."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite
import pytest
from tortoise.connection import get_connection


class PublicOnly:
    """An aiosqlite connection whose public methods work and whose `_execute` and `_conn`
    (runtime/db/_linked_insert.py's one trip) are not there."""

    HIDDEN = frozenset({"_execute", "_conn"})

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self.connection = connection

    def __getattr__(self, name: str) -> Any:
        if name in self.HIDDEN:
            raise AttributeError(name)
        return getattr(self.connection, name)


def hide_private_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default SQLite client hands out its connection as `PublicOnly` from now on."""
    client = get_connection("default")
    real = client.acquire_connection

    @asynccontextmanager
    async def public_only() -> AsyncIterator[PublicOnly]:
        async with real() as connection:
            yield PublicOnly(connection)

    monkeypatch.setattr(client, "acquire_connection", public_only)

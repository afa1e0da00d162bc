"""Atomic updates of plugin storage: concurrent changes never lose one another."""

import asyncio

from runtime.hosting.context import PluginStore
from tests.conftest import Database


async def test_concurrent_increments_all_count(db: Database) -> None:
    store = PluginStore("counter")
    await asyncio.gather(*(store.update("hits", lambda n: (n or 0) + 1, 0) for _ in range(20)))
    assert await store.get("hits") == 20


async def test_update_starts_from_the_default_and_returns_the_new_value(db: Database) -> None:
    store = PluginStore("window")
    value = await store.update("w", lambda w: {**w, "sent": w["sent"] + 1}, {"sent": 0})
    assert value == {"sent": 1}
    assert await store.get("w") == {"sent": 1}


async def test_updates_are_scoped_to_the_plugin(db: Database) -> None:
    await PluginStore("a").update("k", lambda n: (n or 0) + 1)
    assert await PluginStore("b").get("k") is None

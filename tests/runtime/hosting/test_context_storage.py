"""ctx.storage: a plugin's own key-value store, invisible to every other plugin."""

from __future__ import annotations

from runtime.hosting.context import PluginStore
from tests.conftest import Database


async def test_values_round_trip_as_json(db: Database) -> None:
    store = PluginStore("alpha")
    values = {"dict": {"a": [1, 2]}, "text": "hello", "digits": "42", "number": 7, "none": None}
    for key, value in values.items():
        await store.set(key, value)
    for key, value in values.items():
        assert await store.get(key) == value


async def test_set_overwrites_and_delete_removes(db: Database) -> None:
    store = PluginStore("alpha")
    await store.set("k", 1)
    await store.set("k", {"v": 2})
    assert await store.get("k") == {"v": 2}
    assert await store.delete("k") is True
    assert await store.delete("k") is False
    assert await store.get("k", "gone") == "gone"


async def test_keys_are_sorted_and_filtered_by_prefix(db: Database) -> None:
    store = PluginStore("alpha")
    for key in ("job:2", "job:1", "other"):
        await store.set(key, True)
    assert await store.keys() == ["job:1", "job:2", "other"]
    assert await store.keys("job:") == ["job:1", "job:2"]


async def test_each_plugin_sees_only_its_own_keys(db: Database) -> None:
    alpha, beta = PluginStore("alpha"), PluginStore("beta")
    await alpha.set("shared-name", "alpha's")
    await beta.set("shared-name", "beta's")
    await beta.set("only-beta", 1)
    assert await alpha.get("shared-name") == "alpha's"
    assert await alpha.get("only-beta") is None
    assert await alpha.keys() == ["shared-name"]
    await alpha.delete("shared-name")
    assert await beta.get("shared-name") == "beta's"

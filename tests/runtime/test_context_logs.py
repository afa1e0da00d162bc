"""ctx.log: entries are stored (the pluginLogs query) and streamed on the hub."""

from __future__ import annotations

from typing import Any

from models import PluginLog
from runtime.host import LOG_CHANNEL
from runtime.sdk import Plugin, PluginContext
from tests.conftest import Database
from tests.runtime.hosting import running_host, until


class Chatty(Plugin):
    async def on_load(self, ctx: PluginContext) -> None:
        ctx.log.info("loaded")


async def test_entries_are_stored_and_published(db: Database) -> None:
    async with running_host({"chatty": Chatty}) as host:
        ctx = host.loaded["chatty"].context
        async with host.hub.subscribe(LOG_CHANNEL) as inbox:
            ctx.log.warning("disk almost full", free=12)
            message = await inbox.get()
            while message.data is None or message.data["level"] != "WARNING":
                message = await inbox.get()  # "loaded" may be written after we subscribed
        await until(lambda: PluginLog.filter(plugin="chatty", level="WARNING").exists())
    assert message.data is not None
    assert {k: message.data[k] for k in ("plugin", "level", "message", "data")} == {
        "plugin": "chatty",
        "level": "WARNING",
        "message": "disk almost full",
        "data": {"free": 12},
    }
    stored = await PluginLog.get(plugin="chatty", level="WARNING")
    assert (stored.message, stored.data) == ("disk almost full", {"free": 12})
    assert await PluginLog.filter(plugin="chatty", message="loaded").exists()


async def test_data_named_like_log_record_fields_and_non_json_values_are_kept(
    db: Database,
) -> None:
    async with running_host({"chatty": Chatty}) as host:
        ctx = host.loaded["chatty"].context
        odd: Any = object()
        ctx.log.error("odd data", message="m", name="n", thing=odd)
    # host.stop flushed the buffer.
    stored = await PluginLog.get(plugin="chatty", level="ERROR")
    assert stored.data is not None
    assert (stored.data["message"], stored.data["name"]) == ("m", "n")
    assert stored.data["thing"] == str(odd)


async def test_an_unknown_level_is_refused(db: Database) -> None:
    async with running_host({"chatty": Chatty}) as host:
        ctx = host.loaded["chatty"].context
        try:
            ctx.log.log("LOUD", "x")
        except ValueError as error:
            assert "DEBUG" in str(error)
        else:
            raise AssertionError("LOUD was accepted")

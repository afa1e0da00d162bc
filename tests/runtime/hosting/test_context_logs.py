"""ctx.log: entries are stored (the pluginLogs query) and streamed on the hub."""

from __future__ import annotations

from typing import Any

import pytest

from models import PluginLog
from runtime.hosting.context import LogSink, PluginLogger
from runtime.hosting.host import LOG_CHANNEL
from runtime.sdk import Plugin, PluginContext
from tests.conftest import Database
from tests.runtime.hosts import running_host, until


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


async def test_a_failed_write_is_tried_again(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    failures = iter([ConnectionError("dropped")])
    real = PluginLog.bulk_create

    async def flaky(entries: list[PluginLog]) -> Any:
        if (failure := next(failures, None)) is not None:
            raise failure
        return await real(entries)

    monkeypatch.setattr(PluginLog, "bulk_create", flaky)
    published: list[dict[str, Any]] = []
    sink = LogSink(_collect(published))
    sink.first_backoff = 0
    PluginLogger("p", sink).info("kept")
    await sink.stop()
    assert await PluginLog.filter(plugin="p", message="kept").exists()
    assert [entry["message"] for entry in published] == ["kept"]


async def test_an_entry_the_database_refuses_is_the_only_one_lost(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refused(entries: list[PluginLog]) -> Any:
        raise ValueError("refused")

    real_save = PluginLog.save

    async def save(self: PluginLog, *args: Any, **kwargs: Any) -> None:
        if self.message == "bad":
            raise ValueError("refused")
        await real_save(self, *args, **kwargs)

    monkeypatch.setattr(PluginLog, "bulk_create", refused)
    monkeypatch.setattr(PluginLog, "save", save)
    published: list[dict[str, Any]] = []
    sink = LogSink(_collect(published))
    sink.retries, sink.first_backoff = 1, 0
    logger = PluginLogger("p", sink)
    for message in ("one", "bad", "two"):
        logger.info(message)
    await sink.stop()
    stored = await PluginLog.filter(plugin="p").order_by("id").values_list("message", flat=True)
    assert list(stored) == ["one", "two"]
    assert [entry["message"] for entry in published] == ["one", "two"]
    assert sink.dropped == 1


def _collect(into: list[dict[str, Any]]) -> Any:
    async def publish(entry: dict[str, Any]) -> None:
        into.append(entry)

    return publish

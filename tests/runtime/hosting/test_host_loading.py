"""Loading and unloading: hooks in order, statuses stored and published."""

from __future__ import annotations

from typing import Any

from models import InstalledPlugin
from runtime.broadcast.hub import Inbox
from runtime.hosting.host import STATUS_CHANNEL, PluginHost
from runtime.sdk import Plugin, PluginContext
from tests.conftest import Database
from tests.runtime.hosts import running_host

calls: list[tuple[str, Any]] = []


class Tracked(Plugin):
    async def on_load(self, ctx: PluginContext) -> None:
        calls.append(("on_load", dict(ctx.config)))
        ctx.scheduler.every(3600, self.noop, name="hourly")

    async def on_enable(self, ctx: PluginContext) -> None:
        calls.append(("on_enable", None))

    async def on_disable(self, ctx: PluginContext) -> None:
        calls.append(("on_disable", None))

    async def on_unload(self, ctx: PluginContext) -> None:
        calls.append(("on_unload", None))

    async def noop(self) -> None:
        return None


class Broken(Plugin):
    async def on_load(self, ctx: PluginContext) -> None:
        raise RuntimeError("missing api key")


def hooks() -> list[str]:
    return [name for name, _ in calls]


async def changes(inbox: Inbox, count: int) -> list[tuple[str, str | None]]:
    seen = []
    for _ in range(count):
        message = await inbox.get()
        assert message.data is not None
        seen.append((message.data["status"], message.data["previousStatus"]))
    return seen


async def disable(host: PluginHost, name: str) -> None:
    await InstalledPlugin.filter(name=name).update(enabled=False)
    await host.sync_plugin(name)


async def test_enable_loads_then_enables_and_is_active(db: Database) -> None:
    calls.clear()
    async with running_host({"tracked": Tracked}) as host:
        assert hooks() == ["on_load", "on_enable"]
        assert host.loaded["tracked"].status == "ACTIVE"
        row = await InstalledPlugin.get(name="tracked")
        assert row.status == "ACTIVE"
        assert row.last_error is None


async def test_disable_disables_then_unloads_and_is_disabled(db: Database) -> None:
    calls.clear()
    async with running_host({"tracked": Tracked}) as host:
        await disable(host, "tracked")
        assert hooks() == ["on_load", "on_enable", "on_disable", "on_unload"]
        assert "tracked" not in host.loaded
        assert (await InstalledPlugin.get(name="tracked")).status == "DISABLED"


async def test_a_config_change_reloads_with_the_new_config(db: Database) -> None:
    calls.clear()
    async with running_host({"tracked": Tracked}) as host:
        await InstalledPlugin.filter(name="tracked").update(config={"channel": "#ops"})
        await host.sync_plugin("tracked")
        assert host.loaded["tracked"].context.config == {"channel": "#ops"}
        await host.sync_plugin("tracked")  # nothing changed: no reload
        assert hooks() == [
            "on_load",
            "on_enable",
            "on_disable",
            "on_unload",
            "on_load",
            "on_enable",
        ]
    assert [config for name, config in calls if name == "on_load"] == [{}, {"channel": "#ops"}]


async def test_a_failing_on_load_is_failed_with_the_error(db: Database) -> None:
    async with running_host({"broken": Broken}) as host:
        assert "broken" not in host.loaded
        row = await InstalledPlugin.get(name="broken")
    assert row.status == "FAILED"
    assert row.last_error == "RuntimeError: missing api key"


async def test_status_changes_are_published_with_the_previous_status(db: Database) -> None:
    async with (
        running_host({"tracked": Tracked}) as host,
        host.hub.subscribe(STATUS_CHANNEL) as inbox,
    ):
        await disable(host, "tracked")
        await InstalledPlugin.filter(name="tracked").update(enabled=True)
        await host.sync_plugin("tracked")
        seen = await changes(inbox, 3)
    assert seen == [("DISABLED", "ACTIVE"), ("LOADING", "DISABLED"), ("ACTIVE", "LOADING")]


async def test_a_failed_load_is_published_with_its_error(db: Database) -> None:
    async with (
        running_host({"broken": Broken}) as host,
        host.hub.subscribe(STATUS_CHANNEL) as inbox,
    ):
        await host.sync_plugin("broken")  # FAILED plugins are tried again
        message = await inbox.get()
        while message.data is None or message.data["status"] != "FAILED":
            message = await inbox.get()
    assert message.data["plugin"] == "broken"
    assert message.data["previousStatus"] == "LOADING"
    assert message.data["error"] == "RuntimeError: missing api key"


async def test_stopping_the_host_unloads_every_plugin_cleanly(db: Database) -> None:
    calls.clear()
    async with running_host({"tracked": Tracked}) as host:
        scheduler = host.loaded["tracked"].context.scheduler
        tasks = list(scheduler._tasks.values())
    assert host.loaded == {}
    assert hooks()[-2:] == ["on_disable", "on_unload"]
    assert all(task.done() for task in tasks)
    # Stopping is not disabling: the next start loads the plugin again.
    row = await InstalledPlugin.get(name="tracked")
    assert (row.enabled, row.status) == (True, "ACTIVE")

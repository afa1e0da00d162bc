"""Plugin code the host calls outside deliveries runs under the plugin's hook timeout: a
hanging on_load fails that plugin, with the reason, and everything else goes on."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from models import InstalledPlugin, PluginLog
from runtime.catalog.manifest import parse_manifest
from runtime.core.errors import PlatformError
from runtime.hosting.host import PluginHost, PluginTestFailed
from runtime.sdk import Plugin, PluginContext
from tests.conftest import Database
from tests.runtime.hosts import manifest, running_host, until

# A limit on the test itself: without the host's time limits, it would hang here forever.
HANG_GUARD = 30
FOREVER = 3600


def quick(name: str, **extra: Any) -> dict[str, Any]:
    return manifest(name, timeoutSeconds=0.2, **extra)


class Healthy(Plugin):
    pass


class StuckOnLoad(Plugin):
    MANIFEST = quick("stuck")

    async def on_load(self, ctx: PluginContext) -> None:
        await asyncio.sleep(FOREVER)


class StuckOnEnable(Plugin):
    MANIFEST = quick("stuck")

    async def on_enable(self, ctx: PluginContext) -> None:
        await asyncio.sleep(FOREVER)


@pytest.mark.parametrize(("cls", "hook"), [(StuckOnLoad, "on_load"), (StuckOnEnable, "on_enable")])
async def test_a_hanging_start_hook_fails_its_plugin_and_start_up_goes_on(
    db: Database, cls: type[Plugin], hook: str
) -> None:
    async with asyncio.timeout(HANG_GUARD):
        async with running_host({"another": Healthy, "stuck": cls, "zz-last": Healthy}) as host:
            assert sorted(host.loaded) == ["another", "zz-last"]
            assert {p.status for p in host.loaded.values()} == {"ACTIVE"}
    row = await InstalledPlugin.get(name="stuck")
    assert row.status == "FAILED"
    assert row.last_error == f"{hook} did not finish within 0.2 s"
    await until(
        lambda: PluginLog.filter(
            plugin="stuck", message=f"loading failed: {hook} did not finish within 0.2 s"
        ).exists()
    )


class Gated(Plugin):
    """on_load waits for the test to open the gate; its timeout is the longest there is."""

    MANIFEST = manifest("gated", timeoutSeconds=600)
    gate: asyncio.Event

    async def on_load(self, ctx: PluginContext) -> None:
        await Gated.gate.wait()


def register(host: PluginHost, name: str, cls: type[Plugin]) -> None:
    raw = getattr(cls, "MANIFEST", None) or manifest(name)
    host.registry.register(cls, parse_manifest({**raw, "name": name}), "test")


async def test_a_plugin_still_loading_does_not_hold_up_installing_another(db: Database) -> None:
    Gated.gate = asyncio.Event()
    async with running_host({}) as host:
        for name, cls in (("gated", Gated), ("other", Healthy)):
            register(host, name, cls)
            await InstalledPlugin.create(name=name, version="1.0.0", enabled=True, config={})
        loading = asyncio.create_task(host.sync_plugin("gated"))
        await until(lambda: "gated" in host.loaded)
        async with asyncio.timeout(HANG_GUARD):
            await host.sync_plugin("other")
        assert host.loaded["other"].status == "ACTIVE"
        assert (host.loaded["gated"].status, loading.done()) == ("LOADING", False)
        Gated.gate.set()
        await loading
        assert host.loaded["gated"].status == "ACTIVE"


class StuckOnStop(Plugin):
    """on_disable and on_unload wait for a gate the test opens only once it has its answer."""

    MANIFEST = quick("stopping")
    gate: asyncio.Event

    async def on_disable(self, ctx: PluginContext) -> None:
        await StuckOnStop.gate.wait()

    async def on_unload(self, ctx: PluginContext) -> None:
        await StuckOnStop.gate.wait()


async def test_hanging_stop_hooks_are_cut_short_and_the_plugin_is_disabled(
    db: Database,
) -> None:
    StuckOnStop.gate = asyncio.Event()
    async with running_host({"stopping": StuckOnStop}) as host:
        try:
            await InstalledPlugin.filter(name="stopping").update(enabled=False)
            async with asyncio.timeout(HANG_GUARD):
                await host.sync_plugin("stopping")
        finally:
            StuckOnStop.gate.set()  # so that the host can stop, whatever happened
        assert "stopping" not in host.loaded
        assert (await InstalledPlugin.get(name="stopping")).status == "DISABLED"
        for hook in ("on_disable", "on_unload"):
            message = f"{hook} failed: {hook} did not finish within 0.2 s"
            await until(lambda m=message: PluginLog.filter(plugin="stopping", message=m).exists())


class StuckAnswering(Plugin):
    MANIFEST = quick("answering")

    async def on_load(self, ctx: PluginContext) -> None:
        async def wait(given: Mapping[str, Any]) -> Any:
            await asyncio.sleep(FOREVER)

        ctx.api.action("wait", wait)

    async def test_connection(self, ctx: PluginContext) -> dict[str, Any]:
        await asyncio.sleep(FOREVER)
        return {"ok": True}


async def test_a_hanging_connection_test_fails_with_the_reason(db: Database) -> None:
    async with asyncio.timeout(HANG_GUARD), running_host({"answering": StuckAnswering}) as host:
        with pytest.raises(PluginTestFailed) as raised:
            await host.test_plugin("answering")
    assert str(raised.value) == "test_connection did not finish within 0.2 s"


async def test_a_hanging_action_fails_with_the_reason(db: Database) -> None:
    async with asyncio.timeout(HANG_GUARD), running_host({"answering": StuckAnswering}) as host:
        action = host.loaded["answering"].context.api.actions["wait"]
        with pytest.raises(PlatformError) as raised:
            await host.call_action("answering", action, {})
    assert raised.value.message == "answering: action wait did not finish within 0.2 s"
    assert raised.value.as_extensions() == {"code": "INTERNAL", "timeoutSeconds": 0.2}

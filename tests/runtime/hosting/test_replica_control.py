"""Two hosts sharing one database and one Redis behave as one: control and wake-ups."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest

from models import Delivery, InstalledPlugin
from runtime.broadcast.hub import Hub
from runtime.catalog.installs import Installer
from runtime.catalog.manifest import parse_manifest
from runtime.delivery.emitter import EmitRequest
from runtime.hosting.host import HostSettings, PluginHost
from runtime.hosting.registry import PluginRegistry
from runtime.sdk import Plugin, PluginContext
from tests.conftest import FAST_PATHS, REQUIRE_SERVICES, Database, reachable
from tests.runtime.hosts import BOX, all_final, manifest, until

REDIS_URL = os.environ.get("STREAMSPACE_TEST_REDIS_URL", "redis://127.0.0.1:6379")


@pytest.fixture
def redis_url() -> str:
    if not reachable(REDIS_URL.replace("redis://", "postgres://")):
        reason = f"Redis is not reachable at {REDIS_URL}"
        if REQUIRE_SERVICES:
            pytest.fail(f"{reason}, and STREAMSPACE_REQUIRE_SERVICES=1 requires it")
        pytest.skip(reason)
    return REDIS_URL


class Counter(Plugin):
    async def on_session_created(self, ctx: PluginContext, session: Mapping[str, Any]) -> None:
        return None


@asynccontextmanager
async def replica(name: str, url: str, poll: float = 30.0) -> AsyncIterator[PluginHost]:
    """A host that polls rarely, so only announcements can make it act quickly."""
    registry = PluginRegistry()
    registry.register(Counter, parse_manifest(manifest("counter")), "test")
    hub = Hub(url, fast_paths=FAST_PATHS)
    await hub.connect()
    settings = HostSettings(replica=name, poll_interval=poll, fast_paths=FAST_PATHS)
    host = PluginHost(registry, hub, Installer(BOX), settings)
    await host.start()
    try:
        yield host
    finally:
        await host.stop()
        await hub.disconnect()


async def test_enabling_on_one_replica_loads_the_plugin_on_the_other(
    db: Database, redis_url: str
) -> None:
    async with replica("a", redis_url) as a, replica("b", redis_url) as b:
        await InstalledPlugin.create(name="counter", version="1.0.0", enabled=True, config={})
        await a.apply_change("counter")
        assert a.loaded["counter"].status == "ACTIVE"
        await until(lambda: "counter" in b.loaded, deadline=5)
        await InstalledPlugin.filter(name="counter").update(enabled=False)
        await b.apply_change("counter")
        await until(lambda: "counter" not in a.loaded, deadline=5)


async def test_an_event_emitted_on_one_replica_wakes_the_workers_of_the_other(
    db: Database, redis_url: str
) -> None:
    await InstalledPlugin.create(name="counter", version="1.0.0", enabled=True, config={})
    async with replica("a", redis_url) as a, replica("b", redis_url):
        # Only b's worker runs: a accepts the event, and b (polling every 30 s) must be woken
        # by a's announcement to run it within the deadline.
        await a.loaded["counter"].worker.stop()
        result = await a.emitter.emit(EmitRequest("session.created", {"id": "s2"}))
        assert [d.plugin for d in result.deliveries] == ["counter"]
        await until(lambda: all_final(result.event.id), deadline=5)
    assert (await Delivery.get(event_id=result.event.id)).status == "SUCCEEDED"

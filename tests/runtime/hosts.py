"""A plugin host running in the test's process, with plugins the tests define."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from models import InstalledPlugin
from runtime.broadcast.hub import Hub
from runtime.catalog.installs import Installer
from runtime.catalog.manifest import parse_manifest
from runtime.core.secrets import SecretBox
from runtime.hosting.host import HostSettings, PluginHost
from runtime.hosting.registry import PluginRegistry
from runtime.sdk.outcomes import FINAL
from tests.conftest import FAST_PATHS

BOX = SecretBox("test-secret-key")


def manifest(name: str, permissions: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "version": "1.0.0",
        "type": "extension",
        "category": "testing",
        "permissions": ["sessions:read", "users:read"] if permissions is None else permissions,
        **extra,
    }


@asynccontextmanager
async def running_host(
    plugins: dict[str, type],
    *,
    url: str = "memory://",
    backoff: float = 0.01,
    secrets: Mapping[str, dict[str, Any]] | None = None,
    **settings: Any,
) -> AsyncIterator[PluginHost]:
    """A started host whose registry holds `plugins` (name → class), each installed enabled;
    `secrets` (name → values) are stored encrypted as a plugin's secret configuration."""
    registry = PluginRegistry()
    for name, cls in plugins.items():
        raw = getattr(cls, "MANIFEST", None) or manifest(name)
        registry.register(cls, parse_manifest({**raw, "name": name}), "test")
        hidden = (secrets or {}).get(name)
        await InstalledPlugin.create(
            name=name,
            version="1.0.0",
            enabled=True,
            config={},
            secret_config=BOX.encrypt(hidden) if hidden else None,
        )
    hub = Hub(url, fast_paths=FAST_PATHS)
    await hub.connect()
    defaults = {"backoff_base": backoff, "poll_interval": 0.05, "fast_paths": FAST_PATHS}
    host = PluginHost(registry, hub, Installer(BOX), HostSettings(**{**defaults, **settings}))
    await host.start()
    try:
        yield host
    finally:
        await host.stop()
        await hub.disconnect()


async def until(condition: Callable[[], Any], deadline: float = 10.0) -> None:
    """Wait for an async or plain condition to hold (a deadline for a hang, not a timing test)."""
    async with asyncio.timeout(deadline):
        while True:
            value = condition()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return
            await asyncio.sleep(0.02)


async def all_final(event_id: int) -> bool:
    from models import Delivery

    statuses = [
        str(status)
        for status in await Delivery.filter(event_id=event_id).values_list("status", flat=True)
    ]
    return bool(statuses) and all(status in FINAL for status in statuses)

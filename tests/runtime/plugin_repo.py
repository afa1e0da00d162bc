"""Plugin repositories built by tests: plugin folders, their archives and an index.json."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from models import Delivery
from runtime.broadcast.hub import Hub
from runtime.catalog.installs import Installer
from runtime.catalog.sources.fetch import UrlFetcher
from runtime.core.address_policy import AddressPolicy
from runtime.delivery.emitter import EmitRequest
from runtime.devkit.packing import pack_plugin, write_index
from runtime.hosting.host import HostSettings, PluginHost
from runtime.hosting.loader import PluginCode
from runtime.hosting.registry import PluginRegistry
from tests.conftest import FAST_PATHS
from tests.runtime.hosts import BOX

# The class imports a module of its own folder, so loading must handle the folder's submodules.
CODE = """
from runtime.sdk import Plugin

from . import marker


class Greeter(Plugin):
    async def on_event(self, ctx, event):
        return {"version": marker.VERSION, "greeting": ctx.config.get("greeting")}
"""


def write_plugin(root: Path, name: str, version: str, marker: str, **manifest: Any) -> Path:
    """A plugin folder whose on_event answers {"version": marker}."""
    folder = root / f"{name}-{version}"
    folder.mkdir(parents=True)
    raw = {
        "name": name,
        "version": version,
        "type": "extension",
        "category": "testing",
        "entrypoints": {"python": "plugin:Greeter"},
        **manifest,
    }
    (folder / "plugin.json").write_text(json.dumps(raw))
    (folder / "plugin.py").write_text(CODE)
    (folder / "marker.py").write_text(f"VERSION = {marker!r}\n")
    return folder


def build_repository(root: Path, plugins: list[tuple[str, str, str, dict[str, Any]]]) -> str:
    """Pack each (name, version, marker, manifest extras) into `root/repo`; its file:// URL."""
    sources = root / "sources"
    repo = root / "repo"
    for name, version, marker, extra in plugins:
        pack_plugin(write_plugin(sources, name, version, marker, **extra), repo)
    write_index(repo, name="test repository")
    return repo.as_uri()


@asynccontextmanager
async def dynamic_host(
    data_dir: Path, network: AddressPolicy
) -> AsyncIterator[tuple[PluginHost, Installer]]:
    """A started host and installer that load repository code into `data_dir/plugins`,
    downloading archives as `network` allows."""
    registry = PluginRegistry()
    code = PluginCode(registry, data_dir / "plugins", fetcher=UrlFetcher(network), box=BOX)
    installer = Installer(BOX)
    installer.load_code_with(code)
    hub = Hub("memory://", fast_paths=FAST_PATHS)
    await hub.connect()
    host = PluginHost(
        registry,
        hub,
        installer,
        HostSettings(backoff_base=0.01, poll_interval=0.05, fast_paths=FAST_PATHS),
        code=code,
        network=network,
    )
    installer.apply_changes_with(host.apply_change)
    await host.start()
    try:
        yield host, installer
    finally:
        await host.stop()
        await hub.disconnect()


async def ping(host: PluginHost) -> list[Any]:
    """Emit custom.ping, wait for its deliveries and return their results."""
    result = await host.emitter.emit(
        EmitRequest(type="custom.ping", payload={}, wait=True, wait_timeout_ms=5000)
    )
    rows = await Delivery.filter(event_id=result.event.id).order_by("plugin")
    return [(row.plugin, row.status, row.result) for row in rows]

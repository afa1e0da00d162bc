"""Running a built-in plugin against a local stand-in for its vendor."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from models import InstalledPlugin
from runtime.broadcast.hub import Hub
from runtime.catalog.installs import Installer, PluginSchema
from runtime.core.address_policy import AddressPolicy
from runtime.hosting.host import HostSettings, PluginHost
from runtime.hosting.registry import PluginRegistry, discover_builtins
from tests.conftest import FAST_PATHS
from tests.local_http import local_network, serve
from tests.runtime.hosts import BOX

Check = Callable[[web.Request, bytes], Awaitable[None] | None]


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        import orjson

        return orjson.loads(self.body)


@dataclass
class VendorServer:
    """A local HTTP server that records each request, runs `check` on it (the vendor's rules,
    as assertions), and answers with the queued (status, headers, body) or 200."""

    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    answers: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    check: Check | None = None
    failures: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(Recorded(request.method, request.path, dict(request.headers), body))
        if self.check is not None:
            try:
                outcome = self.check(request, body)
                if outcome is not None:
                    await outcome
            except AssertionError as error:
                # The plugin sees a 400, as from the vendor; the test sees why.
                self.failures.append(str(error))
                return web.Response(status=400, text=f"rejected: {error}")
        status, headers, text = self.answers.pop(0) if self.answers else (200, {}, "ok")
        return web.Response(status=status, headers=headers, text=text)


@pytest.fixture
async def vendor() -> AsyncIterator[VendorServer]:
    server = VendorServer()
    async with serve(server.handle, "/{tail:.*}", method="*") as url:
        server.url = url
        yield server
    assert not server.failures, server.failures


@asynccontextmanager
async def builtin_host(
    name: str, config: dict[str, Any], network: AddressPolicy | None = None
) -> AsyncIterator[PluginHost]:
    """A started host with the built-in plugin `name` installed and enabled with `config`
    (validated and split into secret and public parts as installPlugin does), reaching what
    `network` allows (by default the loopback addresses where the tests' vendors listen)."""
    registry = PluginRegistry()
    discover_builtins(registry)
    spec = registry.get(name)
    assert spec is not None, f"no built-in plugin {name}"
    installer = Installer(BOX)
    schema = PluginSchema.of(spec.manifest.raw)
    merged = schema.validated({**schema.defaults, **config})
    public, hidden = installer.split(merged, schema.shape)
    await InstalledPlugin.create(
        name=name, version=spec.manifest.version, enabled=True, config=public, secret_config=hidden
    )
    hub = Hub("memory://", fast_paths=FAST_PATHS)
    await hub.connect()
    host = PluginHost(
        registry,
        hub,
        installer,
        HostSettings(backoff_base=0.01, poll_interval=0.05, fast_paths=FAST_PATHS),
        network=network or local_network(),
    )
    await host.start()
    try:
        yield host
    finally:
        await host.stop()
        await hub.disconnect()

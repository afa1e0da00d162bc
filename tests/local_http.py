"""Local HTTP endpoints that tests start on 127.0.0.1 (stand-ins for receivers and vendors),
and the address policy that lets the server reach them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web

from runtime.core.address_policy import LOOPBACK_NETWORKS, AddressPolicy

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serve(handler: Handler, path: str = "/hook", method: str = "POST") -> AsyncIterator[str]:
    """Serve `handler` at `path` on a free port; yield the URL; stop it afterwards.

    `path` may be a pattern such as "/{tail:.*}" to take every path.
    """
    app = web.Application()
    app.router.add_route(method, path, handler)
    async with serve_app(app) as base:
        yield f"{base}{path if '{' not in path else ''}"


@asynccontextmanager
async def serve_app(app: web.Application, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve `app` on a free port of `host`; yield its base URL; stop it afterwards."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def local_network(*file_roots: Path) -> AddressPolicy:
    """The address policy tests give the server: loopback allowed, where their stand-ins
    listen (the default refuses it), and file:// URLs under `file_roots`."""
    return AddressPolicy().allowing(LOOPBACK_NETWORKS, *file_roots)

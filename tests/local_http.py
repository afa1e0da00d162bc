"""Local HTTP endpoints that tests start on 127.0.0.1 (stand-ins for receivers and vendors)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serve(handler: Handler, path: str = "/hook", method: str = "POST") -> AsyncIterator[str]:
    """Serve `handler` at `path` on a free port; yield the URL; stop it afterwards.

    `path` may be a pattern such as "/{tail:.*}" to take every path.
    """
    app = web.Application()
    app.router.add_route(method, path, handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}{path if '{' not in path else ''}"
    finally:
        await runner.cleanup()

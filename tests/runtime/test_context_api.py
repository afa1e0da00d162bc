"""ctx.api routes: served under /plugins/<name>/ while the plugin is active, 404 after."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount
from starlette.types import ASGIApp, Message

from models import InstalledPlugin
from runtime.plugin_routes import PluginRoutes
from runtime.sdk import Plugin, PluginContext
from tests.conftest import Database
from tests.runtime.hosting import running_host


class Routed(Plugin):
    async def on_load(self, ctx: PluginContext) -> None:
        async def hello(request: Request) -> JSONResponse:
            return JSONResponse({"plugin": ctx.name, "who": request.query_params.get("who")})

        ctx.api.route("/hello", hello)


async def call(app: ASGIApp, path: str, query: str = "") -> tuple[int, Any]:
    """A GET through an ASGI app, in-process."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", b"127.0.0.1")],
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 50000),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    try:
        return status, orjson.loads(body)
    except orjson.JSONDecodeError:
        return status, body.decode()


async def test_a_route_is_served_while_active_and_404_after_disable(db: Database) -> None:
    async with running_host({"routed": Routed}) as host:
        routes = PluginRoutes(host.router_of)
        assert await call(routes, "/routed/hello", "who=ann") == (
            200,
            {"plugin": "routed", "who": "ann"},
        )
        await InstalledPlugin.filter(name="routed").update(enabled=False)
        await host.sync_plugin("routed")
        status, body = await call(routes, "/routed/hello")
    assert status == 404
    assert "routed" in body["error"]


async def test_routes_are_reached_through_the_plugins_mount(db: Database) -> None:
    async with running_host({"routed": Routed}) as host:
        app = Starlette(routes=[Mount("/plugins", app=PluginRoutes(host.router_of))])
        assert (await call(app, "/plugins/routed/hello"))[0] == 200
        assert (await call(app, "/plugins/routed/missing"))[0] == 404
        assert (await call(app, "/plugins/nobody/hello"))[0] == 404

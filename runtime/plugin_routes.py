"""HTTP routes plugins register, served under /plugins/<name>/ while the plugin is active."""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import JSONResponse
from starlette.routing import Router
from starlette.types import Receive, Scope, Send


class PluginRoutes:
    """An ASGI app for the /plugins mount: hands each request to the named plugin's router."""

    def __init__(self, router_of: Callable[[str], Router | None]) -> None:
        self._router_of = router_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        root = scope.get("root_path", "")
        relative = path[len(root) :] if root and path.startswith(root) else path
        name, _, rest = relative.lstrip("/").partition("/")
        router = self._router_of(name) if name else None
        if router is None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            response = JSONResponse({"error": f"no active plugin named {name!r}"}, status_code=404)
            await response(scope, receive, send)
            return
        child = dict(scope)
        child["root_path"] = f"{root}/{name}"
        child["path"] = f"{root}/{name}/{rest}"
        await router(child, receive, send)

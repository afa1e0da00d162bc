"""HTTP routes plugins register, served under /plugins/<name>/ while the plugin is active.

Plugins declare their routes through the SDK (runtime.sdk.extensions: path, endpoint, methods,
role or public); here they become Starlette routes. The host checks the caller before a plugin
sees a request. Each route names the role a caller's bearer token must hold (admin unless the
plugin says otherwise), or is public, which a plugin must say explicitly (`public=True`).
Without a token, or with a bad or expired one, the answer is 401; with a token lacking the
role, 403; either way a JSON error, and the plugin's handler is never called.

The handler reads the verified caller through Starlette's usual attributes: `request.user`
(`display_name` is the token's subject) and `request.auth.scopes` (its roles). The token itself
is not passed on: a plugin's code has no use for a caller's credentials.

Example (inside a plugin):
    ctx.api.route("/count", self.count)                      # admins only
    ctx.api.route("/mine", self.mine, role="user")           # users (and admins)
    ctx.api.route("/status", self.status, public=True)       # anyone, no token
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from starlette.authentication import AuthCredentials, BaseUser, UnauthenticatedUser
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from runtime.core.auth import Principal, bearer_token
from runtime.core.errors import Unauthenticated
from runtime.sdk.extensions import PluginRoute

# RFC 6750: how a client learns that the route takes a bearer token.
_CHALLENGE = 'Bearer realm="streamspace-plugins"'


def router_for(routes: Iterable[PluginRoute]) -> Router:
    """The Starlette router serving a plugin's declared routes, each behind its `RoleGuard`."""
    return Router(routes=[starlette_route(route) for route in routes])


def starlette_route(route: PluginRoute) -> Route:
    guard = Middleware(RoleGuard, route=route)
    return Route(route.path, route.endpoint, methods=list(route.methods), middleware=[guard])


class Caller(BaseUser):
    """The verified caller of a plugin route, as `request.user`."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.principal.subject

    @property
    def identity(self) -> str:
        return self.principal.subject


class Anonymous(UnauthenticatedUser):
    """No verified caller, and why (no token, a bad one, an expired one)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class RoleGuard:
    """In front of one route's endpoint: the caller must hold the route's role."""

    def __init__(self, app: ASGIApp, route: PluginRoute) -> None:
        self._app = app
        self._route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self._refusal(scope.get("user"))
        if refusal is None:
            await self._app(scope, receive, send)
        else:
            await refusal(scope, receive, send)

    def _refusal(self, user: Any) -> JSONResponse | None:
        required = self._route.role
        if required is None:
            return None
        if not isinstance(user, Caller):
            # Only the mount authenticates; reached any other way, a route is closed.
            reason = user.reason if isinstance(user, Anonymous) else "no caller was verified"
            return _unauthenticated(reason)
        if not user.principal.has(required):
            return JSONResponse(
                {
                    "error": f"{self._route.path} needs the {required.value} role",
                    "code": "FORBIDDEN",
                },
                status_code=403,
            )
        return None


def _unauthenticated(reason: str) -> JSONResponse:
    return JSONResponse(
        {"error": reason, "code": "UNAUTHENTICATED"},
        status_code=401,
        headers={"WWW-Authenticate": _CHALLENGE},
    )


class PluginRoutes:
    """An ASGI app for the /plugins mount: verifies the caller's bearer token, then hands the
    request to the named plugin's router, whose routes each check their role."""

    def __init__(
        self, router_of: Callable[[str], Router | None], verify: Callable[[str], Principal]
    ) -> None:
        self._router_of = router_of
        self._verify = verify

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            # Plugins register HTTP routes only.
            await send({"type": "websocket.close", "code": 1008})
            return
        path = scope.get("path", "")
        root = scope.get("root_path", "")
        relative = path[len(root) :] if root and path.startswith(root) else path
        name, _, rest = relative.lstrip("/").partition("/")
        router = self._router_of(name) if name else None
        if router is None:
            response = JSONResponse(
                {"error": f"no active plugin named {name!r}", "code": "NOT_FOUND"},
                status_code=404,
            )
            await response(scope, receive, send)
            return
        child = dict(scope)
        child["root_path"] = f"{root}/{name}"
        child["path"] = f"{root}/{name}/{rest}"
        child["user"], child["auth"] = self._caller(scope)
        child["headers"] = [
            (key, value) for key, value in scope.get("headers", []) if key != b"authorization"
        ]
        await router(child, receive, send)

    def _caller(self, scope: Scope) -> tuple[BaseUser, AuthCredentials]:
        headers = [value for key, value in scope.get("headers", []) if key == b"authorization"]
        if not headers:
            return Anonymous("this route needs a token: Authorization: Bearer <token>"), (
                AuthCredentials()
            )
        try:
            token = bearer_token(headers[0].decode("latin-1"))
            if token is None:
                raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
            principal = self._verify(token)
        except Unauthenticated as error:
            return Anonymous(error.message), AuthCredentials()
        return Caller(principal), AuthCredentials(sorted(role.value for role in principal.roles))

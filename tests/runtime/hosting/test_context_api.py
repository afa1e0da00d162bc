"""ctx.api routes: served under /plugins/<name>/ while the plugin is active, 404 after; each
to callers whose token holds its role (admin unless declared otherwise), or to anyone when
declared public; a refused caller never reaches the plugin's handler."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount

from models import InstalledPlugin
from runtime.core.auth import Role, TokenIssuer
from runtime.hosting.routes import PluginRoutes
from runtime.sdk import Plugin, PluginContext
from runtime.sdk.extensions import declare_route
from tests.asgi import Answer, request
from tests.conftest import Database
from tests.runtime.hosts import running_host

TOKENS = TokenIssuer("plugin-routes-test-secret-0123456789")
handled: list[str] = []


class Routed(Plugin):
    async def on_load(self, ctx: PluginContext) -> None:
        async def hello(request: Request) -> JSONResponse:
            handled.append("hello")
            return JSONResponse({"plugin": ctx.name, "who": request.query_params.get("who")})

        async def mine(request: Request) -> JSONResponse:
            handled.append("mine")
            return JSONResponse(
                {
                    "subject": request.user.display_name,
                    "roles": request.auth.scopes,
                    "authorization": request.headers.get("authorization"),
                }
            )

        async def status(request: Request) -> JSONResponse:
            handled.append("status")
            return JSONResponse({"ok": True, "signed_in": request.user.is_authenticated})

        ctx.api.route("/hello", hello)
        ctx.api.route("/mine", mine, role="user")
        ctx.api.route("/status", status, public=True)


def bearer(role: Role, ttl: timedelta = timedelta(hours=1)) -> dict[str, str]:
    return {"authorization": f"Bearer {TOKENS.issue(role, f'{role.value}-1', ttl)}"}


ADMIN = bearer(Role.ADMIN)
OTHER_SERVER = TokenIssuer("another-servers-secret-0123456789-0123456789")
FOREIGN = {"authorization": f"Bearer {OTHER_SERVER.issue(Role.ADMIN, 'x')}"}


async def get(routes: Any, path: str, headers: dict[str, str] | None = None) -> Answer:
    return await request(routes, "GET", path, headers=headers)


async def test_a_route_is_served_while_active_and_404_after_disable(db: Database) -> None:
    async with running_host({"routed": Routed}) as host:
        routes = PluginRoutes(host.router_of, TOKENS.verify)
        answer = await request(routes, "GET", "/routed/hello", query="who=ann", headers=ADMIN)
        assert (answer.status, answer.json()) == (200, {"plugin": "routed", "who": "ann"})
        await InstalledPlugin.filter(name="routed").update(enabled=False)
        await host.sync_plugin("routed")
        gone = await get(routes, "/routed/hello", ADMIN)
    assert gone.status == 404
    assert "routed" in gone.json()["error"]


async def test_routes_are_reached_through_the_plugins_mount(db: Database) -> None:
    async with running_host({"routed": Routed}) as host:
        app = Starlette(routes=[Mount("/plugins", app=PluginRoutes(host.router_of, TOKENS.verify))])
        assert (await get(app, "/plugins/routed/hello", ADMIN)).status == 200
        assert (await get(app, "/plugins/routed/missing", ADMIN)).status == 404
        assert (await get(app, "/plugins/nobody/hello", ADMIN)).status == 404


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (None, "needs a token"),
        ({"authorization": "Bearer not-a-token"}, "the token is not valid"),
        ({"authorization": "Basic YWxpY2U6c2VjcmV0"}, "must be 'Bearer <token>'"),
        (bearer(Role.ADMIN, timedelta(seconds=-1)), "expired"),
        (FOREIGN, "the token is not valid"),
    ],
    ids=["no-token", "garbage", "not-bearer", "expired", "foreign-signature"],
)
async def test_a_caller_without_a_valid_token_gets_401_and_the_handler_is_not_called(
    db: Database, headers: dict[str, str] | None, reason: str
) -> None:
    handled.clear()
    async with running_host({"routed": Routed}) as host:
        routes = PluginRoutes(host.router_of, TOKENS.verify)
        for path in ("/routed/hello", "/routed/mine"):
            answer = await get(routes, path, headers)
            assert answer.status == 401
            assert answer.json()["code"] == "UNAUTHENTICATED"
            assert reason in answer.json()["error"]
            assert answer.headers["www-authenticate"].startswith("Bearer")
    assert handled == []


async def test_a_token_without_the_routes_role_gets_403_and_the_handler_is_not_called(
    db: Database,
) -> None:
    handled.clear()
    async with running_host({"routed": Routed}) as host:
        routes = PluginRoutes(host.router_of, TOKENS.verify)
        for role in (Role.USER, Role.PLATFORM):
            answer = await get(routes, "/routed/hello", bearer(role))
            assert (answer.status, answer.json()["code"]) == (403, "FORBIDDEN")
            assert "needs the admin role" in answer.json()["error"]
        refused = await get(routes, "/routed/mine", bearer(Role.PLATFORM))
        assert refused.status == 403
    assert handled == []


async def test_a_route_for_users_serves_users_and_admins_and_sees_the_caller_not_the_token(
    db: Database,
) -> None:
    async with running_host({"routed": Routed}) as host:
        routes = PluginRoutes(host.router_of, TOKENS.verify)
        as_user = await get(routes, "/routed/mine", bearer(Role.USER))
        as_admin = await get(routes, "/routed/mine", ADMIN)
    assert as_user.status == 200
    assert as_user.json() == {"subject": "user-1", "roles": ["user"], "authorization": None}
    assert as_admin.json()["roles"] == ["admin", "user"]


@pytest.mark.parametrize(
    "headers",
    [None, {"authorization": "Bearer not-a-token"}, ADMIN],
    ids=["no-token", "bad-token", "admin"],
)
async def test_a_public_route_serves_anyone(db: Database, headers: dict[str, str] | None) -> None:
    async with running_host({"routed": Routed}) as host:
        routes = PluginRoutes(host.router_of, TOKENS.verify)
        answer = await get(routes, "/routed/status", headers)
    assert answer.status == 200
    assert answer.json() == {"ok": True, "signed_in": headers is ADMIN}


async def test_a_plugins_router_reached_without_the_mount_refuses_every_guarded_route(
    db: Database,
) -> None:
    async with running_host({"routed": Routed}) as host:
        router = host.router_of("routed")
        assert router is not None
        answer = await get(router, "/hello", ADMIN)
    assert answer.status == 401


def test_routes_are_declared_admin_only_unless_said_otherwise() -> None:
    def endpoint(request: Request) -> JSONResponse:
        return JSONResponse({})

    assert declare_route("/a", endpoint).role == Role.ADMIN
    assert declare_route("/a", endpoint, ["post"], role="platform").methods == ("POST",)
    assert declare_route("/a", endpoint, public=True).public
    with pytest.raises(ValueError, match="takes no role"):
        declare_route("/a", endpoint, role="user", public=True)
    with pytest.raises(ValueError, match="use one of admin, user, platform"):
        declare_route("/a", endpoint, role="anyone")
    with pytest.raises(TypeError):
        declare_route("/a", endpoint, public="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="starts with '/'"):
        declare_route("a", endpoint)

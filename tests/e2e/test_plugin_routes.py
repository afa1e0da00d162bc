"""Plugin HTTP routes over the real server: the server checks the bearer token before the
plugin sees a request (401 without one or with a bad one, 403 with the wrong role), and a
route the plugin declared public serves anyone."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from runtime.devkit.packing import pack_plugin, write_index
from tests.e2e.conftest import Server, clean_env, cli_path, data_of

pytestmark = pytest.mark.e2e

PLUGIN = "streamspace-routes-e2e"
MANIFEST: dict[str, Any] = {
    "name": PLUGIN,
    "version": "1.0.0",
    "displayName": "Routes E2E",
    "description": "Serves one route per kind of caller",
    "type": "api",
    "category": "development",
    "permissions": [],
    "entrypoints": {"python": "plugin:Routed"},
}
PLUGIN_CODE = """\
from starlette.responses import JSONResponse

from runtime.sdk import Plugin

HANDLED = []


async def count(request):
    HANDLED.append("count")
    return JSONResponse({"count": len(HANDLED)})


async def mine(request):
    HANDLED.append("mine")
    return JSONResponse(
        {
            "subject": request.user.display_name,
            "authorization": request.headers.get("authorization"),
        }
    )


async def status(request):
    return JSONResponse({"handled": HANDLED})


class Routed(Plugin):
    async def on_load(self, ctx):
        ctx.api.route("/count", count)
        ctx.api.route("/mine", mine, role="user")
        ctx.api.route("/status", status, public=True)
"""


@dataclass
class Routed:
    server: Server
    user_token: str
    platform_token: str

    def url(self, path: str) -> str:
        return f"{self.server.base}/plugins/{PLUGIN}{path}"


def _token(server: Server, role: str) -> str:
    command = [cli_path(), "token", "--role", role, "--subject", f"{role}-1"]
    minted = subprocess.run(
        [*command, "--data-dir", str(server.data_dir)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return minted.stdout.strip()


def _admin(server: Server, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps({"query": query, "variables": variables}).encode()
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {server.admin_token}",
    }
    sent = urllib.request.Request(server.graphql_url, body, headers, method="POST")
    with urllib.request.urlopen(sent, timeout=60) as response:
        document: dict[str, Any] = json.loads(response.read())
    assert "errors" not in document, document
    data: dict[str, Any] = document["data"]
    return data


@pytest.fixture(scope="module")
def routed(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Routed:
    """The plugin packed into a repository in the server's data dir, installed and enabled."""
    source = tmp_path_factory.mktemp("routes-plugin")
    (source / "plugin.json").write_text(json.dumps(MANIFEST))
    (source / "plugin.py").write_text(PLUGIN_CODE)
    repository = server.data_dir / "routes-repo"
    pack_plugin(source, repository)
    write_index(repository, name="Routes E2E")
    added = _admin(
        server,
        "mutation($input: AddRepositoryInput!) { addRepository(input: $input) { id } }",
        {"input": {"name": "routes-e2e", "url": repository.as_uri() + "/"}},
    )
    _admin(
        server,
        "mutation($id: ID!) { syncRepository(id: $id) { added } }",
        {"id": added["addRepository"]["id"]},
    )
    found = _admin(
        server,
        "query($s: String) { catalog(filter: {search: $s}) { edges { node { id name } } } }",
        {"s": "routes e2e"},
    )
    (entry,) = [e["node"] for e in found["catalog"]["edges"] if e["node"]["name"] == PLUGIN]
    installed = _admin(
        server,
        "mutation($id: ID!) { installPlugin(catalogPluginId: $id, enable: true) { status } }",
        {"id": entry["id"]},
    )
    assert installed["installPlugin"]["status"] == "ACTIVE", installed
    return Routed(server, _token(server, "user"), _token(server, "platform"))


async def call(http: aiohttp.ClientSession, url: str, token: str | None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.get(url, headers=headers) as response:
        return response.status, await response.json()


async def test_a_route_without_a_token_or_with_a_bad_one_is_401(
    http: aiohttp.ClientSession, routed: Routed
) -> None:
    for token in (None, "not-a-token", routed.server.admin_token[:-4] + "AAAA"):
        status, body = await call(http, routed.url("/count"), token)
        assert (status, body["code"]) == (401, "UNAUTHENTICATED"), body
        assert "token" in body["error"]
    status, _ = await call(http, routed.url("/mine"), None)
    assert status == 401


async def test_a_token_without_the_routes_role_is_403(
    http: aiohttp.ClientSession, routed: Routed
) -> None:
    status, body = await call(http, routed.url("/count"), routed.user_token)
    assert (status, body["code"]) == (403, "FORBIDDEN")
    assert "admin role" in body["error"]
    status, body = await call(http, routed.url("/mine"), routed.platform_token)
    assert status == 403


async def test_the_routes_role_reaches_the_handler_which_never_sees_the_token(
    http: aiohttp.ClientSession, routed: Routed
) -> None:
    status, body = await call(http, routed.url("/count"), routed.server.admin_token)
    assert status == 200 and body["count"] >= 1
    status, body = await call(http, routed.url("/mine"), routed.user_token)
    assert (status, body) == (200, {"subject": "user-1", "authorization": None})


async def test_a_public_route_serves_anyone_and_refused_callers_reach_no_handler(
    http: aiohttp.ClientSession, routed: Routed
) -> None:
    status, before = await call(http, routed.url("/status"), None)
    assert status == 200
    for token in (None, "not-a-token", routed.user_token, routed.platform_token):
        assert (await call(http, routed.url("/count"), token))[0] in {401, 403}
    assert (await call(http, routed.url("/mine"), routed.platform_token))[0] == 403
    _, refused = await call(http, routed.url("/status"), None)
    assert refused["handled"] == before["handled"]
    await call(http, routed.url("/count"), routed.server.admin_token)
    _, allowed = await call(http, routed.url("/status"), "not-a-token")
    assert allowed["handled"] == [*before["handled"], "count"]


async def test_graphql_shows_the_routes_and_which_is_public(
    http: aiohttp.ClientSession, routed: Routed
) -> None:
    data = await data_of(
        http,
        routed.server,
        "query($n: String) { installedPlugin(name: $n) { routes { path role public } } }",
        {"n": PLUGIN},
    )
    assert data["installedPlugin"]["routes"] == [
        {"path": "/count", "role": "admin", "public": False},
        {"path": "/mine", "role": "user", "public": False},
        {"path": "/status", "role": None, "public": True},
    ]

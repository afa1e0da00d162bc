"""The server process over HTTP: health, authentication, limits and a first session."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from graph.transport.http_requests import GRAPHQL_RESPONSE
from tests.e2e.conftest import Server, data_of, error_codes, graphql, run_cli

pytestmark = pytest.mark.e2e

PLUGIN = "e2e-notifier"
MANIFEST: dict[str, Any] = {
    "name": PLUGIN,
    "version": "1.0.0",
    "displayName": "E2E Notifier",
    "description": "Posts session events to a webhook",
    "author": "StreamSpace",
    "license": "MIT",
    "type": "webhook",
    "category": "notifications",
    "tags": ["alerts", "webhook"],
    "permissions": ["sessions:read"],
    "configSchema": {
        "type": "object",
        "properties": {"webhookUrl": {"type": "string", "format": "uri"}},
        "required": ["webhookUrl"],
    },
    "entrypoints": {"python": "plugin:Notifier"},
}
PLUGIN_CODE = """\
from runtime.sdk import Plugin


class Notifier(Plugin):
    pass
"""


def build_index(folder: Path) -> str:
    """A repository folder as API.md describes it: index.json beside a tar.gz archive."""
    folder.mkdir(parents=True, exist_ok=True)
    archive_name = f"{PLUGIN}-1.0.0.tar.gz"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in (("plugin.json", json.dumps(MANIFEST)), ("plugin.py", PLUGIN_CODE)):
            content = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    (folder / archive_name).write_bytes(buffer.getvalue())
    index = {
        "apiVersion": 1,
        "name": "E2E Plugins",
        "plugins": [
            {
                "name": PLUGIN,
                "versions": [
                    {
                        "version": "1.0.0",
                        "manifest": MANIFEST,
                        "archive": archive_name,
                        "sha256": hashlib.sha256(buffer.getvalue()).hexdigest(),
                        "publishedAt": "2026-01-01T00:00:00Z",
                    }
                ],
            }
        ],
    }
    (folder / "index.json").write_text(json.dumps(index))
    return folder.as_uri() + "/"


async def test_healthz(http: aiohttp.ClientSession, server: Server) -> None:
    async with http.get(f"{server.base}/healthz") as response:
        assert response.status == 200


async def test_readyz_says_ready_in_json(http: aiohttp.ClientSession, server: Server) -> None:
    async with http.get(f"{server.base}/readyz") as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        assert (await response.json())["status"] == "ready"


async def test_serve_prints_where_it_listens_and_an_admin_token_that_works(
    http: aiohttp.ClientSession, server: Server
) -> None:
    output = server.output()
    assert f"http://127.0.0.1:{server.port}/graphql" in output
    assert "streamspace-plugins token" in output
    if server.database_url:
        assert "database:" in output
    assert server.admin_token, output
    data = await data_of(http, server, "{ viewer { subject roles } }")
    assert data["viewer"]["subject"] == "admin"
    assert "admin" in data["viewer"]["roles"]


async def test_token_command_mints_tokens_the_server_accepts(
    http: aiohttp.ClientSession, server: Server
) -> None:
    result = await run_cli(
        "token", "--role", "admin", "--subject", "x", "--data-dir", str(server.data_dir)
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    data = await data_of(http, server, "{ viewer { subject roles } }", token=token)
    assert data["viewer"]["subject"] == "x"
    assert "admin" in data["viewer"]["roles"]

    user = await run_cli(
        "token", "--role", "user", "--subject", "alice", "--ttl", "5m",
        "--data-dir", str(server.data_dir),
    )  # fmt: skip
    assert user.returncode == 0, user.stderr
    document = await graphql(
        http,
        server,
        'mutation { addRepository(input: {name: "nope", url: "https://example.com/"}) { id } }',
        token=user.stdout.strip(),
    )
    assert error_codes(document) == ["FORBIDDEN"]


async def test_token_command_refuses_a_bad_ttl(server: Server) -> None:
    result = await run_cli(
        "token", "--role", "user", "--subject", "x", "--ttl", "soon",
        "--data-dir", str(server.data_dir),
    )  # fmt: skip
    assert result.returncode == 2
    assert "ttl" in result.stderr
    assert "Traceback" not in result.stderr


async def test_no_token_is_unauthenticated(http: aiohttp.ClientSession, server: Server) -> None:
    document = await graphql(http, server, "{ viewer { subject } repositories { id } }")
    assert set(error_codes(document)) == {"UNAUTHENTICATED"}


async def test_a_bad_token_is_unauthenticated(http: aiohttp.ClientSession, server: Server) -> None:
    for token in ("not-a-jwt", server.admin_token[:-4] + "AAAA"):
        document = await graphql(http, server, "{ repositories { id } }", token=token)
        assert error_codes(document) == ["UNAUTHENTICATED"], document


async def test_introspection_is_open(http: aiohttp.ClientSession, server: Server) -> None:
    document = await graphql(http, server, "{ __schema { queryType { name } } }")
    assert document["data"]["__schema"]["queryType"]["name"] == "Query"


async def test_graphiql_is_served(http: aiohttp.ClientSession, server: Server) -> None:
    async with http.get(server.graphql_url, headers={"Accept": "text/html"}) as response:
        assert response.status == 200
        assert "graphiql" in (await response.text()).lower()


async def refusal(response: aiohttp.ClientResponse) -> tuple[int, str, str]:
    """A refused request's status and its one error's code, and the media type answered."""
    document = await response.json(content_type=None)
    [error] = document["errors"]
    assert "data" not in document
    return response.status, error["extensions"]["code"], response.content_type


async def test_a_body_over_the_cap_is_413_as_a_graphql_error(
    http: aiohttp.ClientSession, server: Server
) -> None:
    # The fixture caps bodies at 256 KiB through STREAMSPACE_MAX_BODY_BYTES.
    padding = "x" * (300 * 1024)
    body = json.dumps({"query": "{ viewer { subject } }", "variables": {"padding": padding}})
    headers = {
        "Authorization": f"Bearer {server.admin_token}",
        "Content-Type": "application/json",
    }
    async with http.post(server.graphql_url, data=body, headers=headers) as response:
        assert await refusal(response) == (413, "PAYLOAD_TOO_LARGE", "application/json")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024].encode()

    async with http.post(server.graphql_url, data=chunks(), headers=headers) as response:
        assert await refusal(response) == (413, "PAYLOAD_TOO_LARGE", "application/json")
    # A body under the cap is served as usual.
    small = json.dumps({"query": "{ viewer { subject } }", "variables": {"padding": "x" * 1000}})
    async with http.post(server.graphql_url, data=small, headers=headers) as response:
        assert response.status == 200
        assert (await response.json())["data"]["viewer"]["subject"] == "admin"


async def test_plugin_routes_keep_the_body_cap(http: aiohttp.ClientSession, server: Server) -> None:
    body = b"x" * (300 * 1024)
    async with http.post(f"{server.base}/plugins/any/hook", data=body) as response:
        assert response.status == 413


JSON_BODY = {"Content-Type": "application/json"}
REFUSED = [
    # (method, query string, headers, body, status, code); each was plain text without a code.
    ("POST", "", JSON_BODY, "{not json", 400, "BAD_REQUEST"),
    ("POST", "", JSON_BODY, "5", 400, "BAD_REQUEST"),  # was a 500
    ("POST", "", JSON_BODY, '[{"query": "{ __typename }"}]', 400, "BAD_REQUEST"),
    ("POST", "", JSON_BODY, "{}", 400, "BAD_REQUEST"),
    ("POST", "", JSON_BODY, '{"query": 5}', 400, "BAD_REQUEST"),
    ("POST", "", JSON_BODY, '{"query": "{ __typename }", "variables": [1]}', 400, "BAD_REQUEST"),
    ("POST", "", JSON_BODY, '{"query": "query A { __typename }", "operationName": "B"}', 400,
     "BAD_REQUEST"),
    ("POST", "", {"Content-Type": "text/plain"}, '{"query": "{ __typename }"}', 415,
     "UNSUPPORTED_MEDIA_TYPE"),
    ("POST", "", JSON_BODY, '{"query": "subscription { pluginLogs { message } }"}', 400,
     "BAD_REQUEST"),  # was executed, and failed as INTERNAL
    ("GET", "?query=mutation%20%7B%20removeRepository(id%3A%20%221%22)%20%7D", {}, None, 405,
     "METHOD_NOT_ALLOWED"),
    ("PUT", "", JSON_BODY, '{"query": "{ __typename }"}', 405, "METHOD_NOT_ALLOWED"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "query", "headers", "body", "status", "code"),
    REFUSED,
    ids=[
        "not-json", "not-an-object", "batch", "no-query", "query-not-text", "variables-list",
        "unknown-operation", "media-type", "subscription", "get-mutation", "put",
    ],
)  # fmt: skip
async def test_a_request_graphql_does_not_run_is_a_coded_graphql_error(
    http: aiohttp.ClientSession,
    server: Server,
    method: str,
    query: str,
    headers: dict[str, str],
    body: str | None,
    status: int,
    code: str,
) -> None:
    headers = {**headers, "Authorization": f"Bearer {server.admin_token}"}
    url = server.graphql_url + query
    async with http.request(method, url, data=body, headers=headers) as response:
        assert await refusal(response) == (status, code, "application/json")
        if status == 405:
            assert response.headers["Allow"] == ("POST" if method == "GET" else "GET, POST")


async def test_a_client_preferring_graphql_response_json_gets_it(
    http: aiohttp.ClientSession, server: Server
) -> None:
    for accept, media in [
        ("application/graphql-response+json, application/json;q=0.9", GRAPHQL_RESPONSE),
        ("application/json, application/graphql-response+json;q=0.5", "application/json"),
        ("application/graphql-response+json;q=0, application/json", "application/json"),
        ("*/*", "application/json"),
    ]:
        headers = {**JSON_BODY, "Accept": accept}
        async with http.post(server.graphql_url, data="{not json", headers=headers) as response:
            assert await refusal(response) == (400, "BAD_REQUEST", media)
            if media == GRAPHQL_RESPONSE:
                assert response.charset == "utf-8"


def doubling_fragments(n: int) -> str:
    """Under 3 KB: each fragment spreads the next twice, 2^n fields once spread."""
    chain = " ".join(f"fragment F{i} on Viewer {{ ...F{i + 1} ...F{i + 1} }}" for i in range(n))
    return f"{{ viewer {{ ...F0 }} }} {chain} fragment F{n} on Viewer {{ subject }}"


async def test_healthz_answers_while_hostile_documents_are_refused(
    http: aiohttp.ClientSession, server: Server
) -> None:
    """n=20 held the event loop (and /healthz) for seconds; n=40 never finished."""

    async def hostile(n: int) -> dict[str, Any]:
        async with http.post(server.graphql_url, json={"query": doubling_fragments(n)}) as sent:
            assert sent.status == 200
            document: dict[str, Any] = await sent.json()
            return document

    async def healthz() -> int:
        async with http.get(f"{server.base}/healthz") as response:
            return response.status

    refused = [asyncio.create_task(hostile(n)) for n in (20, 40, 60)]
    assert [await healthz() for _ in range(3)] == [200, 200, 200]
    for n, task in zip((20, 40, 60), refused, strict=True):
        document = await task
        assert error_codes(document) == ["GRAPHQL_VALIDATION_FAILED"]
        assert document["errors"][0]["message"].startswith(f"{2**n + 1} fields selected")


async def test_a_first_session(http: aiohttp.ClientSession, server: Server, tmp_path: Path) -> None:
    """As in the README: add a repository, sync it, browse, install, list what is installed."""
    url = build_index(tmp_path / "index")
    added = await data_of(
        http,
        server,
        "mutation Add($input: AddRepositoryInput!) {"
        " addRepository(input: $input) { id name url } }",
        {"input": {"name": "e2e", "url": url, "description": "built by the test"}},
    )
    repository = added["addRepository"]
    assert repository["name"] == "e2e"

    synced = await data_of(
        http,
        server,
        "mutation Sync($id: ID!) { syncRepository(id: $id) {"
        " added updated removed errors { plugin message } } }",
        {"id": repository["id"]},
    )
    assert synced["syncRepository"] == {"added": 1, "updated": 0, "removed": 0, "errors": []}

    browse = """
        query Browse($search: String) {
          catalog(filter: {search: $search}, sort: NAME, first: 10) {
            totalCount
            edges { cursor node { id name version displayName tags installed { id enabled } } }
            pageInfo { hasNextPage endCursor }
          }
        }
    """
    catalog = (await data_of(http, server, browse, {"search": "notifier"}))["catalog"]
    assert catalog["totalCount"] == 1
    assert catalog["pageInfo"]["hasNextPage"] is False
    node = catalog["edges"][0]["node"]
    assert (node["name"], node["version"], node["displayName"]) == (
        PLUGIN,
        "1.0.0",
        "E2E Notifier",
    )
    assert sorted(node["tags"]) == ["alerts", "webhook"]
    assert node["installed"] is None

    install = """
        mutation Install($id: ID!, $config: JSON) {
          installPlugin(catalogPluginId: $id, config: $config) { id name version enabled config }
        }
    """
    refused = await graphql(
        http, server, install, {"id": node["id"], "config": {"webhookUrl": 42}},
        server.admin_token,
    )  # fmt: skip
    assert error_codes(refused) == ["BAD_USER_INPUT"], refused
    assert refused["errors"][0]["extensions"]["fields"][0]["path"] == "webhookUrl"

    config = {"webhookUrl": "https://hooks.example.com/services/T0/B0/X"}
    installed = (await data_of(http, server, install, {"id": node["id"], "config": config}))[
        "installPlugin"
    ]
    assert (installed["name"], installed["version"], installed["enabled"]) == (
        PLUGIN,
        "1.0.0",
        False,
    )
    assert installed["config"]["webhookUrl"] == config["webhookUrl"]

    listed = await data_of(
        http, server, "{ installedPlugins { id name version enabled catalogPlugin { id } } }"
    )
    mine = [plugin for plugin in listed["installedPlugins"] if plugin["name"] == PLUGIN]
    assert mine == [
        {
            "id": installed["id"],
            "name": PLUGIN,
            "version": "1.0.0",
            "enabled": False,
            "catalogPlugin": {"id": node["id"]},
        }
    ]
    catalog = (await data_of(http, server, browse, {"search": "notifier"}))["catalog"]
    assert catalog["edges"][0]["node"]["installed"] == {"id": installed["id"], "enabled": False}


async def test_metrics_in_prometheus_text(http: aiohttp.ClientSession, server: Server) -> None:
    async with http.get(f"{server.base}/metrics") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
    samples = {
        line.split(" ")[0]: line.rsplit(" ", 1)[1]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert samples['streamspace_queue_depth{status="PENDING"}'] == "0.0"
    assert samples["streamspace_oldest_pending_seconds"] == "0.0"
    assert "streamspace_subscribers" in samples
    assert "# TYPE streamspace_hook_duration_seconds histogram" in text
    assert "# TYPE streamspace_events_accepted_total counter" in text
    assert "# TYPE streamspace_deliveries_total counter" in text

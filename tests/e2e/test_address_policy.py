"""A server on its default address policy (no allowed networks, no file roots) reaches neither
itself nor anything else on loopback, nor files outside its data directory: repositories and
plugins alike."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import (
    Server,
    check_clean_exit,
    data_of,
    error_codes,
    graphql,
    start_server,
)

pytestmark = pytest.mark.e2e

ADD = "mutation A($input: AddRepositoryInput!) { addRepository(input: $input) { id } }"
SYNC = "mutation S($id: ID!) { syncRepository(id: $id) { added } }"


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("strict"), "sqlite", allowed_networks=None)
    try:
        yield running
    finally:
        check_clean_exit(running, running.stop())


async def refusal(http: aiohttp.ClientSession, server: Server, query: str, **variables: Any) -> str:
    document = await graphql(http, server, query, variables, server.admin_token)
    assert error_codes(document) == ["BAD_USER_INPUT"], document
    message: str = document["errors"][0]["message"]
    return message


async def test_the_server_does_not_sync_from_its_own_endpoint(
    http: aiohttp.ClientSession, strict_server: Server
) -> None:
    own = f"http://127.0.0.1:{strict_server.port}/graphql"
    message = await refusal(http, strict_server, ADD, input={"name": "own", "url": own})
    assert "refused by the address policy: 127.0.0.1 is a loopback address" in message

    by_name = own.replace("127.0.0.1", "localhost")
    added = await data_of(http, strict_server, ADD, {"input": {"name": "own", "url": by_name}})
    message = await refusal(http, strict_server, SYNC, id=added["addRepository"]["id"])
    assert "refused by the address policy: localhost resolves to a loopback address" in message


@pytest.mark.parametrize("where", ["/etc/", "/proc/self/environ", "tmp"])
async def test_no_file_repository_outside_the_data_directory(
    http: aiohttp.ClientSession, strict_server: Server, tmp_path: Path, where: str
) -> None:
    url = tmp_path.as_uri() if where == "tmp" else f"file://{where}"
    message = await refusal(http, strict_server, ADD, input={"name": "files", "url": url})
    assert "STREAMSPACE_FILE_REPOSITORY_ROOTS" in message


async def test_a_webhook_to_the_server_itself_is_refused(
    http: aiohttp.ClientSession, strict_server: Server
) -> None:
    found = await data_of(
        http,
        strict_server,
        '{ catalog(filter: {search: "streamspace-webhook"}) { edges { node { id name } } } }',
    )
    [entry] = [
        e["node"] for e in found["catalog"]["edges"] if e["node"]["name"] == "streamspace-webhook"
    ]
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    config = {"url": f"http://localhost:{strict_server.port}/graphql", "secret": secret}
    installed = await data_of(
        http,
        strict_server,
        "mutation I($id: ID!, $config: JSON) {"
        " installPlugin(catalogPluginId: $id, config: $config, enable: true) { id } }",
        {"id": entry["id"], "config": config},
    )
    tested = await data_of(
        http,
        strict_server,
        "mutation T($id: ID!) { testPlugin(id: $id) { ok message } }",
        {"id": installed["installPlugin"]["id"]},
    )
    assert tested["testPlugin"]["ok"] is False
    assert "refused by the address policy" in tested["testPlugin"]["message"]
    assert secret not in tested["testPlugin"]["message"]

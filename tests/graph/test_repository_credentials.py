"""Repository credentials through GraphQL: never in `url` or `lastSyncError`, shown masked to
admins only, and used by syncRepository."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runtime.core.address_policy import Network
from runtime.core.auth import Role
from tests.graph.conftest import Execute
from tests.local_http import local_network
from tests.runtime.catalog.test_repository_credentials import PASSWORD, PrivateFiles, private_files
from tests.runtime.plugin_repo import build_repository

TOKEN_USER = "ghp_0123456789abcdefSECRETuser"
ADD = """mutation($url: String!) { addRepository(input: {name: "private", url: $url}) {
  id url credentials { username password } } }"""
SYNC = "mutation($id: ID!) { syncRepository(id: $id) { added repository { url lastSyncError } } }"
LIST = "{ repositories { name url lastSyncError } }"
CREDENTIALS = "{ repositories { name credentials { username password } } }"
CATALOG = "{ catalog { edges { node { name repository { url credentials { password } } } } } }"


@pytest.fixture
def allowed_networks() -> tuple[Network, ...]:
    """Loopback, where the test's repository listens."""
    return local_network().allowed_networks


@pytest.fixture
async def index_server(tmp_path: Path) -> AsyncIterator[PrivateFiles]:
    build_repository(tmp_path, [("greeter", "1.0.0", "1", {})])
    async for files in private_files(tmp_path / "repo"):
        yield files


async def test_admins_see_the_url_without_credentials_and_them_masked(
    gql: Execute, index_server: PrivateFiles
) -> None:
    added = (await gql(ADD, {"url": index_server.with_credentials()})).ok()["addRepository"]
    assert added["url"] == index_server.url
    assert added["credentials"] == {"username": "deploy", "password": "********"}
    synced = (await gql(SYNC, {"id": added["id"]})).ok()["syncRepository"]
    assert synced == {"added": 1, "repository": {"url": index_server.url, "lastSyncError": None}}
    catalog = (await gql(CATALOG)).ok()["catalog"]["edges"]
    assert catalog[0]["node"]["repository"] == {
        "url": index_server.url,
        "credentials": {"password": "********"},
    }


async def test_a_token_given_as_the_user_name_is_masked_too(gql: Execute) -> None:
    url = f"https://{TOKEN_USER}@git.example/plugins.git"
    added = (await gql(ADD, {"url": url})).ok()["addRepository"]
    assert added["url"] == "https://git.example/plugins.git"
    assert added["credentials"] == {"username": "********", "password": None}


async def test_users_never_see_credentials(gql: Execute, index_server: PrivateFiles) -> None:
    (await gql(ADD, {"url": index_server.with_credentials()})).ok()
    listed = (await gql(LIST, role=Role.USER)).ok()["repositories"]
    assert index_server.url in [repository["url"] for repository in listed]
    assert PASSWORD not in repr(listed)
    refused = await gql(CREDENTIALS, role=Role.USER)
    assert set(refused.codes) == {"FORBIDDEN"}
    assert PASSWORD not in repr(refused.data) + repr(refused.errors)


async def test_a_failed_sync_names_no_credential(gql: Execute, index_server: PrivateFiles) -> None:
    wrong = "wrong-SECRET-graph-5150"
    added = (await gql(ADD, {"url": index_server.with_credentials(wrong)})).ok()["addRepository"]
    failed = await gql(SYNC, {"id": added["id"]})
    assert failed.codes == ["BAD_USER_INPUT"]
    listed = (await gql(LIST, role=Role.USER)).ok()["repositories"]
    shown = repr(failed.errors) + repr(listed)
    assert "answered HTTP 401" in shown
    assert wrong not in shown

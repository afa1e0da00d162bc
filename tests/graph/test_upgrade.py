"""Installing code from a repository, upgrading and rolling back through GraphQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runtime.core.auth import Role
from tests.graph.conftest import Execute
from tests.runtime.plugin_repo import build_repository

ADD = """mutation($url: String!) {
  addRepository(input: {name: "test", url: $url}) { id } }"""
SYNC = "mutation($id: ID!) { syncRepository(id: $id) { added updated errors { message } } }"
INSTALL = """mutation($id: ID!, $deps: Boolean) {
  installPlugin(catalogPluginId: $id, enable: true, installDependencies: $deps) {
    id version status previousVersion availableVersions } }"""
UPGRADE = """mutation($id: ID!, $version: String) {
  upgradePlugin(id: $id, version: $version) { version status previousVersion } }"""
ROLLBACK = "mutation($id: ID!) { rollbackPlugin(id: $id) { version status previousVersion } }"
EMIT = """mutation { emitEvent(input: {type: "custom.ping", payload: {}, wait: true}) {
  deliveries { plugin status result } } }"""
CATALOG = """query { catalog(filter: {search: "greeter"}) { edges { node { id name } } } }"""


async def ran(gql: Execute) -> Any:
    data = (await gql(EMIT, role=Role.PLATFORM)).ok()
    return [d["result"]["version"] for d in data["emitEvent"]["deliveries"]]


async def test_install_upgrade_rollback_from_graphql(gql: Execute, tmp_path: Path) -> None:
    url = build_repository(tmp_path, [("greeter", "1.0.0", "1", {})])
    repository = (await gql(ADD, {"url": url})).ok()["addRepository"]["id"]
    assert (await gql(SYNC, {"id": repository})).ok()["syncRepository"]["added"] == 1
    entry = (await gql(CATALOG)).ok()["catalog"]["edges"][0]["node"]["id"]

    installed = (await gql(INSTALL, {"id": entry})).ok()["installPlugin"]
    assert installed["version"] == "1.0.0" and installed["status"] == "ACTIVE"
    assert installed["previousVersion"] is None
    assert await ran(gql) == ["1"]

    build_repository(tmp_path, [("greeter", "2.0.0", "2", {})])
    assert (await gql(SYNC, {"id": repository})).ok()["syncRepository"]["updated"] == 1
    upgraded = (await gql(UPGRADE, {"id": installed["id"]})).ok()["upgradePlugin"]
    assert upgraded == {"version": "2.0.0", "status": "ACTIVE", "previousVersion": "1.0.0"}
    assert await ran(gql) == ["2"]

    rolled = (await gql(ROLLBACK, {"id": installed["id"]})).ok()["rollbackPlugin"]
    assert rolled == {"version": "1.0.0", "status": "ACTIVE", "previousVersion": "2.0.0"}
    assert await ran(gql) == ["1"]

    missing = await gql(UPGRADE, {"id": installed["id"], "version": "9.9.9"})
    assert missing.codes == ["BAD_USER_INPUT"]
    assert "offered: 1.0.0, 2.0.0" in missing.errors[0]["message"]


async def test_dependencies_through_graphql(gql: Execute, tmp_path: Path) -> None:
    url = build_repository(
        tmp_path,
        [
            ("mailer", "1.2.0", "m", {}),
            ("greeter", "1.0.0", "1", {"dependencies": {"mailer": ">=1.2,<2"}}),
        ],
    )
    repository = (await gql(ADD, {"url": url})).ok()["addRepository"]["id"]
    (await gql(SYNC, {"id": repository})).ok()
    entry = (await gql(CATALOG)).ok()["catalog"]["edges"][0]["node"]["id"]
    refused = await gql(INSTALL, {"id": entry})
    assert refused.codes == ["BAD_USER_INPUT"]
    assert "mailer >=1.2,<2 (not installed)" in refused.errors[0]["message"]
    installed = (await gql(INSTALL, {"id": entry, "deps": True})).ok()["installPlugin"]
    assert installed["status"] == "ACTIVE"
    assert sorted(await ran(gql)) == ["1", "m"]

"""The developer kit end to end: scaffold → validate → pack → index through the command line,
then the archive folder added to a running server as a file:// INDEX repository, synced,
installed, and the new plugin handling an event."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import (
    Server,
    check_clean_exit,
    clean_env,
    data_of,
    run_cli,
    start_server,
)

pytestmark = pytest.mark.e2e
PLUGIN = "streamspace-devkit-e2e"


@pytest.fixture(scope="module")
def kit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(
        tmp_path_factory.mktemp("devkit"), "sqlite", file_roots=[tmp_path_factory.getbasetemp()]
    )
    try:
        yield running
    finally:
        check_clean_exit(running, running.stop())


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dist folder, built by the command line (synchronously, once per module)."""
    work = tmp_path_factory.mktemp("kit")
    cli = Path(sys.executable).with_name("streamspace-plugins")

    def run(*args: str, cwd: Path = work) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(cli), *args], cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=120
        )

    new = run("plugin", "new", PLUGIN)
    assert new.returncode == 0, new.stderr
    folder = work / PLUGIN
    assert f"created {PLUGIN}/plugin.json" in new.stdout
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    validated = run("plugin", "validate", str(folder))
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "ok:" in validated.stdout
    packed = run("plugin", "pack", str(folder), "--out", "dist")
    assert packed.returncode == 0, packed.stdout + packed.stderr
    assert "packing" in packed.stdout and "added plugin.py" in packed.stdout  # progress lines
    digest = packed.stdout.split("sha256 ", 1)[1].split()[0]
    indexed = run("repo", "index", "dist", "--name", "Devkit E2E")
    assert indexed.returncode == 0, indexed.stderr
    assert "[1/1]" in indexed.stdout
    index = json.loads((work / "dist" / "index.json").read_text())
    version = index["plugins"][0]["versions"][0]
    assert version["sha256"] == digest
    assert version["archive"] == f"{PLUGIN}-0.1.0.tar.gz"
    with tarfile.open(work / "dist" / version["archive"]) as archive:
        assert {"plugin.json", "plugin.py"} <= set(archive.getnames())
    return work / "dist"


async def test_validate_reports_every_problem_and_exits_1(tmp_path: Path) -> None:
    made = await run_cli("plugin", "new", "broken", "--dir", str(tmp_path))
    assert made.returncode == 0, made.stderr
    manifest_file = tmp_path / "broken" / "plugin.json"
    manifest = json.loads(manifest_file.read_text())
    manifest.update(version="one", permissions=["everything"])
    manifest_file.write_text(json.dumps(manifest))
    result = await run_cli("plugin", "validate", str(tmp_path / "broken"))
    assert result.returncode == 1
    assert "version: 'one' is not a semantic version" in result.stdout
    assert "permissions.0: unknown permission 'everything'" in result.stdout
    assert "2 problem(s)" in result.stderr
    packed = await run_cli("plugin", "pack", str(tmp_path / "broken"), "--out", str(tmp_path))
    assert packed.returncode == 1 and "wrote" not in packed.stdout
    again = await run_cli("plugin", "new", "broken", "--dir", str(tmp_path))
    assert again.returncode == 2 and "not empty" in again.stderr


async def _add_and_sync(http: aiohttp.ClientSession, server: Server, dist: Path) -> str:
    added = await data_of(
        http,
        server,
        "mutation Add($input: AddRepositoryInput!) { addRepository(input: $input) { id } }",
        {"input": {"name": "devkit", "url": dist.as_uri() + "/"}},
    )
    repository = added["addRepository"]["id"]
    synced = await data_of(
        http,
        server,
        "mutation Sync($id: ID!) { syncRepository(id: $id) {"
        " added updated removed errors { plugin message } } }",
        {"id": repository},
    )
    assert synced["syncRepository"] == {"added": 1, "updated": 0, "removed": 0, "errors": []}
    catalog = await data_of(
        http,
        server,
        "query Find($s: String) { catalog(filter: {search: $s}, first: 5) {"
        " edges { node { id name version category } } } }",
        {"s": "devkit"},
    )
    (edge,) = catalog["catalog"]["edges"]
    assert edge["node"]["name"] == PLUGIN and edge["node"]["version"] == "0.1.0"
    catalog_id: str = edge["node"]["id"]
    return catalog_id


async def test_the_packed_plugin_is_offered_by_a_repository(
    kit_server: Server, published: Path
) -> None:
    async with aiohttp.ClientSession() as http:
        await _add_and_sync(http, kit_server, published)


async def test_the_installed_plugin_handles_events(tmp_path: Path, published: Path) -> None:
    server = start_server(tmp_path, "sqlite", file_roots=[published])
    try:
        async with aiohttp.ClientSession() as http:
            catalog_id = await _add_and_sync(http, server, published)
            installed = await data_of(
                http,
                server,
                "mutation I($id: ID!) { installPlugin(catalogPluginId: $id) { id } }",
                {"id": catalog_id},
            )
            plugin_id = installed["installPlugin"]["id"]
            enabled = await data_of(
                http,
                server,
                "mutation E($id: ID!) { enablePlugin(id: $id) { status } }",
                {"id": plugin_id},
            )
            assert enabled["enablePlugin"]["status"] == "ACTIVE", enabled
            token = await run_cli(
                "token",
                "--role",
                "platform",
                "--subject",
                "core",
                "--data-dir",
                str(server.data_dir),
            )
            emitted: dict[str, Any] = await data_of(
                http,
                server,
                "mutation Emit($input: EmitEventInput!) { emitEvent(input: $input) {"
                " deliveries { plugin status result } } }",
                {
                    "input": {
                        "type": "session.created",
                        "payload": {"id": "s1", "user_id": "ann"},
                        "wait": True,
                    }
                },
                token.stdout.strip(),
            )
            ours = [d for d in emitted["emitEvent"]["deliveries"] if d["plugin"] == PLUGIN]
            assert ours == [
                {
                    "plugin": PLUGIN,
                    "status": "SUCCEEDED",
                    "result": {"greeted": "ann", "sessions": 1},
                }
            ]
    finally:
        check_clean_exit(server, server.stop())


async def test_validate_warns_about_unmarked_secrets_and_still_passes(tmp_path: Path) -> None:
    made = await run_cli("plugin", "new", "keyed", "--dir", str(tmp_path))
    assert made.returncode == 0, made.stderr
    manifest_file = tmp_path / "keyed" / "plugin.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["configSchema"]["apiToken"] = {"type": "string"}
    manifest_file.write_text(json.dumps(manifest))
    result = await run_cli("plugin", "validate", str(tmp_path / "keyed"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning: configSchema.apiToken: looks like a secret" in result.stdout

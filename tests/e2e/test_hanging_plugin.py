"""A plugin whose on_load never finishes, over the real server: installing it answers FAILED
with the reason once its timeout passes, and `serve` restarted with it installed becomes ready
and loads the other plugins."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from runtime.devkit.packing import pack_plugin, write_index
from tests.conftest import create_database, drop_database, require_postgres, run_apart
from tests.e2e.conftest import check_clean_exit, data_of, start_server

pytestmark = pytest.mark.e2e

PLUGIN_CODE = """\
import asyncio

from runtime.sdk import Plugin


class Hanging(Plugin):
    async def on_load(self, ctx):
        await asyncio.sleep(3600)


class Healthy(Plugin):
    pass
"""
PLUGINS = {"e2e-hanging": "Hanging", "e2e-healthy": "Healthy"}
INSTALLED = """query($name: String) {
  installedPlugin(name: $name) { status lastError runningSettings { timeoutSeconds } } }"""


def write_repository(root: Path) -> Path:
    repository = root / "hanging-repo"
    for name, cls in PLUGINS.items():
        source = root / name
        source.mkdir()
        manifest = {
            "name": name,
            "version": "1.0.0",
            "category": "development",
            "timeoutSeconds": 1,
            "entrypoints": {"python": f"plugin:{cls}"},
        }
        (source / "plugin.json").write_text(json.dumps(manifest))
        (source / "plugin.py").write_text(PLUGIN_CODE)
        pack_plugin(source, repository)
    write_index(repository, name="Hanging E2E")
    return repository


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> Iterator[tuple[str, str | None]]:
    """(backend, database URL or None for the data directory's SQLite)."""
    if request.param == "sqlite":
        yield "sqlite", None
        return
    require_postgres()
    name = f"ssp_e2e_hang_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url = run_apart(create_database(name))
    try:
        yield "postgres", url
    finally:
        run_apart(drop_database(name))


async def install_all(http: aiohttp.ClientSession, server: Any, repository: Path) -> list[Any]:
    added = await data_of(
        http,
        server,
        "mutation($input: AddRepositoryInput!) { addRepository(input: $input) { id } }",
        {"input": {"name": "hanging-e2e", "url": repository.as_uri() + "/"}},
    )
    await data_of(
        http,
        server,
        "mutation($id: ID!) { syncRepository(id: $id) { added } }",
        {"id": added["addRepository"]["id"]},
    )
    found = await data_of(
        http,
        server,
        'query { catalog(filter: {search: "e2e"}, first: 50) { edges { node { id name } } } }',
    )
    ids = {edge["node"]["name"]: edge["node"]["id"] for edge in found["catalog"]["edges"]}
    answers = []
    for name in PLUGINS:
        installed = await data_of(
            http,
            server,
            "mutation($id: ID!) { installPlugin(catalogPluginId: $id, enable: true) {"
            " status lastError } }",
            {"id": ids[name]},
        )
        answers.append(installed["installPlugin"])
    return answers


async def test_serve_becomes_ready_with_a_plugin_whose_on_load_hangs(
    database: tuple[str, str | None], tmp_path: Path
) -> None:
    backend, url = database
    repository = write_repository(tmp_path)
    (tmp_path / "serve").mkdir()
    first = start_server(tmp_path / "serve", backend, url, file_roots=[tmp_path])
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            answers = await install_all(http, first, repository)
    finally:
        check_clean_exit(first, first.stop())
    reason = "on_load did not finish within 1 s"
    assert answers == [
        {"status": "FAILED", "lastError": reason},
        {"status": "ACTIVE", "lastError": None},
    ]

    # start_server returns once /readyz answers 200.
    again = start_server(tmp_path / "serve", backend, url, file_roots=[tmp_path])
    again.admin_token = first.admin_token
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            hanging = await data_of(http, again, INSTALLED, {"name": "e2e-hanging"})
            healthy = await data_of(http, again, INSTALLED, {"name": "e2e-healthy"})
            async with http.get(f"{again.base}/readyz") as ready:
                assert ready.status == 200
    finally:
        check_clean_exit(again, again.stop())
    assert hanging["installedPlugin"] == {
        "status": "FAILED",
        "lastError": reason,
        "runningSettings": None,
    }
    assert healthy["installedPlugin"] == {
        "status": "ACTIVE",
        "lastError": None,
        "runningSettings": {"timeoutSeconds": 1.0},
    }

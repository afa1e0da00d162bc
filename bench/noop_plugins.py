"""Plugins whose hooks return at once, published as an index repository and installed.

Scenario 1 of issue 8 measures emitEvent "with 5 plugins enabled whose hooks return at once".
A running server loads plugin code only from its registry or from a repository, so the bench
writes N such plugins with the developer kit (manifest, pack, index), adds the folder as an
`index` repository and installs and enables each through the API, as an operator would.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson

from runtime.devkit.packing import pack_plugin, write_index
from runtime.devkit.scaffold import manifest_for

PREFIX = "bench-noop-"
PLUGIN_PY = '''\
"""Returns at once: what the runtime costs around a hook that does nothing."""

from collections.abc import Mapping
from typing import Any

from runtime.sdk import Plugin, PluginContext


class NoopPlugin(Plugin):
    async def on_session_created(self, ctx: PluginContext, session: Mapping[str, Any]) -> None:
        return None
'''


class NoopPluginError(RuntimeError):
    """The no-op plugins could not be published or installed."""


def publish(folder: Path, count: int) -> Path:
    """Write `count` no-op plugins, pack them and index them; the repository folder."""
    dist = folder / "dist"
    for index in range(count):
        name = f"{PREFIX}{index}"
        source = folder / name
        source.mkdir(parents=True, exist_ok=True)
        manifest = {
            **manifest_for(name),
            "description": "Returns at once (benchmark)",
            "configSchema": {},
            "defaultConfig": {},
            "entrypoints": {"python": "plugin:NoopPlugin"},
        }
        (source / "plugin.json").write_text(_json(manifest))
        (source / "plugin.py").write_text(PLUGIN_PY)
        pack_plugin(source, dist)
    write_index(dist, name="bench no-op plugins")
    return dist


GraphQL = Any  # async (query, variables) -> data, raising on errors


async def install(graphql: GraphQL, dist: Path, count: int, within: float = 60.0) -> list[str]:
    """Add `dist` as a repository, install and enable its plugins; their installed ids."""
    added = await graphql(
        "mutation A($input: AddRepositoryInput!) { addRepository(input: $input) { id } }",
        {"input": {"name": "bench-noop", "url": dist.as_uri() + "/"}},
    )
    synced = await graphql(
        "mutation S($id: ID!) { syncRepository(id: $id) { added errors { plugin message } } }",
        {"id": added["addRepository"]["id"]},
    )
    if synced["syncRepository"]["added"] != count:
        raise NoopPluginError(f"the no-op repository did not sync: {synced}")
    found = await graphql(
        "query F($s: String) { catalog(filter: {search: $s}, first: 100) "
        "{ edges { node { id name } } } }",
        {"s": PREFIX},
    )
    ids = []
    for edge in found["catalog"]["edges"]:
        installed = await graphql(
            "mutation I($id: ID!) { installPlugin(catalogPluginId: $id, enable: true) { id } }",
            {"id": edge["node"]["id"]},
        )
        ids.append(installed["installPlugin"]["id"])
    deadline = time.monotonic() + within
    while True:
        state = await graphql("query { installedPlugins(enabled: true) { name status } }", None)
        active = [
            p
            for p in state["installedPlugins"]
            if p["name"].startswith(PREFIX) and p["status"] == "ACTIVE"
        ]
        if len(active) == count:
            return ids
        if time.monotonic() > deadline:
            raise NoopPluginError(f"the no-op plugins did not all become ACTIVE: {state}")
        await asyncio.sleep(0.2)


async def wait_idle(graphql: GraphQL, within: float) -> bool:
    """Wait until no delivery is PENDING, RUNNING or RETRYING; False after `within` seconds."""
    deadline = time.monotonic() + within
    query = (
        "query { "
        + " ".join(
            f"{s.lower()}: deliveries(filter: {{status: {s}}}, first: 1) {{ edges {{ cursor }} }}"
            for s in ("PENDING", "RUNNING", "RETRYING")
        )
        + " }"
    )
    while time.monotonic() < deadline:
        open_ = await graphql(query, None)
        if not any(connection["edges"] for connection in open_.values()):
            return True
        await asyncio.sleep(0.2)
    return False


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n"

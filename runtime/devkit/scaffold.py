"""`plugin new NAME`: a plugin folder that validates, packs and passes its own test.

Example:
    >>> import tempfile
    >>> folder = scaffold("hello", Path(tempfile.mkdtemp()))
    >>> sorted(path.name for path in folder.iterdir())
    ['README.md', 'plugin.json', 'plugin.py', 'test_plugin.py']
"""

from __future__ import annotations

import json
import re
from pathlib import Path

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")


class ScaffoldError(ValueError):
    """The name is not a plugin name, or the folder exists already."""


def class_name(name: str) -> str:
    """`streamspace-hello-world` → `HelloWorldPlugin`."""
    stem = name.removeprefix("streamspace-")
    words = [word for word in re.split(r"[^a-zA-Z0-9]+", stem) if word]
    base = "".join(word[:1].upper() + word[1:] for word in words) or "My"
    if base[0].isdigit():
        base = "P" + base
    return f"{base}Plugin"


def manifest_for(name: str) -> dict[str, object]:
    title = name.removeprefix("streamspace-").replace("-", " ").replace("_", " ").title()
    return {
        "name": name,
        "version": "0.1.0",
        "displayName": title,
        "description": f"{title}: greets every new session",
        "author": "",
        "license": "MIT",
        "type": "extension",
        "category": "automation",
        "tags": ["example"],
        "configSchema": {
            "greeting": {
                "type": "string",
                "title": "Greeting",
                "description": "What the plugin logs for each new session",
                "default": "Hello",
            }
        },
        "defaultConfig": {"greeting": "Hello"},
        "permissions": ["sessions:read"],
        "entrypoints": {"python": f"plugin:{class_name(name)}"},
    }


PLUGIN_PY = '''\
"""{name}: logs a greeting for every new session and counts them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runtime.sdk import Plugin, PluginContext, SessionPayload


class {cls}(Plugin):
    async def on_load(self, ctx: PluginContext) -> None:
        ctx.log.info("loaded", greeting=ctx.config.get("greeting"))

    async def on_session_created(
        self, ctx: PluginContext, session: SessionPayload
    ) -> Mapping[str, Any] | None:
        greeting = ctx.config.get("greeting", "Hello")
        ctx.log.info(f"{{greeting}}, {{session.get('userId')}}", session=session.get("id"))
        count = await ctx.storage.update("sessions", lambda n: n + 1, default=0)
        return {{"greeted": session.get("userId"), "sessions": count}}
'''

TEST_PY = '''\
"""Runs the plugin in-process with the SDK's testing harness: no server, no database.

Run with `pytest` from this folder (the streamspace-plugins package must be installed).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from plugin import {cls}

from runtime.sdk import DeliveryStatus
from runtime.sdk.testing import PluginHarness

HERE = Path(__file__).parent


def test_greets_each_new_session() -> None:
    async def scenario() -> None:
        async with PluginHarness({cls}, manifest=HERE / "plugin.json") as harness:
            first = await harness.emit("session.created", {{"id": "s1", "user_id": "ann"}})
            second = await harness.emit("session.created", {{"id": "s2", "user_id": "bob"}})
            assert first.status == DeliveryStatus.SUCCEEDED, first.error
            assert first.result == {{"greeted": "ann", "sessions": 1}}
            assert second.result == {{"greeted": "bob", "sessions": 2}}
            assert "Hello, ann" in harness.log_messages("INFO")
            assert await harness.storage.get("sessions") == 2

    asyncio.run(scenario())


def test_other_events_do_not_reach_it() -> None:
    async def scenario() -> None:
        harness = PluginHarness({cls}, manifest=HERE / "plugin.json")
        outcome = await harness.emit("session.stopped")
        assert outcome.status == "NOT_DELIVERED"

    asyncio.run(scenario())
'''

README_MD = """\
# {name}

A StreamSpace plugin, scaffolded by `streamspace-plugins plugin new {name}`.

It handles `session.created` (permission `sessions:read`): it logs a greeting and counts the
sessions it has seen in its storage.

## Develop

```
pytest                                   # run test_plugin.py (the SDK's testing harness)
streamspace-plugins plugin validate .    # check plugin.json and the class against the SDK
streamspace-plugins plugin pack . --out ../dist
streamspace-plugins repo index ../dist   # write ../dist/index.json for a plugin repository
```

Settings (`configSchema` in plugin.json): `greeting`, the word logged for each new session.

See docs/plugin-guide.md of StreamSpace Plugins for every hook and context API.
"""


def scaffold(name: str, parent: Path) -> Path:
    """Write the folder `parent/name` and return it."""
    if not _NAME.match(name):
        raise ScaffoldError(
            f"{name!r} is not a plugin name: lowercase letters, digits, '-', '.', '_'"
        )
    folder = parent / name
    if folder.exists() and any(folder.iterdir()):
        raise ScaffoldError(f"{folder} exists and is not empty")
    folder.mkdir(parents=True, exist_ok=True)
    cls = class_name(name)
    (folder / "plugin.json").write_text(json.dumps(manifest_for(name), indent=2) + "\n")
    (folder / "plugin.py").write_text(PLUGIN_PY.format(name=name, cls=cls))
    (folder / "test_plugin.py").write_text(TEST_PY.format(name=name, cls=cls))
    (folder / "README.md").write_text(README_MD.format(name=name))
    return folder

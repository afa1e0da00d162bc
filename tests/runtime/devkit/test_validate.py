"""`plugin validate` shows the HTTP routes a plugin registers and which of them are public."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graph import cli
from runtime.devkit.scaffold import scaffold
from runtime.devkit.validate import list_routes

ROUTED = """\
from starlette.responses import JSONResponse

from runtime.sdk import Plugin, PluginContext


async def answer(request):
    return JSONResponse({})


class RoutedPlugin(Plugin):
    async def on_load(self, ctx: PluginContext) -> None:
        ctx.api.route("/count", answer)
        ctx.api.route("/hook", answer, ["POST"], public=True)
        ctx.api.route("/mine", answer, role="user")
        ctx.config["endpoint"]  # required, without a default
        ctx.api.route("/late", answer)
"""


def routed_plugin(tmp_path: Path, *, endpoint_default: str | None = None) -> Path:
    folder = scaffold("streamspace-routed", tmp_path)
    (folder / "plugin.py").write_text(ROUTED)
    manifest = json.loads((folder / "plugin.json").read_text())
    endpoint: dict[str, object] = {"type": "string", "required": True}
    if endpoint_default is not None:
        endpoint["default"] = endpoint_default
    manifest["configSchema"] = {"endpoint": endpoint}
    manifest["defaultConfig"] = {}
    manifest["entrypoints"] = {"python": "plugin:RoutedPlugin"}
    (folder / "plugin.json").write_text(json.dumps(manifest))
    return folder


async def test_every_route_is_listed_with_its_role_or_as_public(tmp_path: Path) -> None:
    listing = await list_routes(routed_plugin(tmp_path, endpoint_default="https://x.example"))
    assert listing.note is None
    assert listing.lines() == [
        "routes (under /plugins/streamspace-routed/ while active):",
        "  GET /count  needs the admin role",
        "  POST /hook  PUBLIC: anyone may call it, without a token",
        "  GET /mine  needs the user role",
        "  GET /late  needs the admin role",
    ]


async def test_a_load_that_needs_settings_lists_what_it_registered_and_says_why(
    tmp_path: Path,
) -> None:
    listing = await list_routes(routed_plugin(tmp_path))
    assert [route.path for route in listing.routes] == ["/count", "/hook", "/mine"]
    assert listing.note is not None and "KeyError" in listing.note


async def test_a_plugin_without_routes_says_so(tmp_path: Path) -> None:
    listing = await list_routes(scaffold("streamspace-quiet", tmp_path))
    assert listing.lines() == ["routes: none"]


def test_the_command_prints_the_routes_after_the_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = routed_plugin(tmp_path, endpoint_default="https://x.example")
    assert cli.main(["plugin", "validate", str(folder)]) == 0
    printed = capsys.readouterr().out
    assert "ok: the manifest and the class fit the SDK" in printed
    assert "  POST /hook  PUBLIC: anyone may call it, without a token" in printed
    assert "  GET /count  needs the admin role" in printed

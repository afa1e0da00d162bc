"""`plugin new` and `plugin validate`: the scaffold is valid and its own test passes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.devkit.scaffold import ScaffoldError, class_name, scaffold
from runtime.devkit.validate import (
    looks_secret,
    plugin_warnings,
    secret_warnings,
    validate_plugin,
)


def test_scaffold_writes_a_valid_plugin(tmp_path: Path) -> None:
    folder = scaffold("streamspace-hello-world", tmp_path)
    manifest = json.loads((folder / "plugin.json").read_text())
    assert manifest["version"] == "0.1.0"
    assert manifest["permissions"] == ["sessions:read"]
    assert manifest["entrypoints"] == {"python": "plugin:HelloWorldPlugin"}
    assert "on_session_created" in (folder / "plugin.py").read_text()
    assert "PluginHarness" in (folder / "test_plugin.py").read_text()
    assert (folder / "README.md").exists()
    assert validate_plugin(folder) == []


def test_the_scaffolds_test_passes_with_pytest_from_its_folder(tmp_path: Path) -> None:
    folder = scaffold("hello", tmp_path)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout


def test_validation_leaves_no_module_behind(tmp_path: Path) -> None:
    folder = scaffold("hello", tmp_path)
    before = set(sys.modules)
    assert validate_plugin(folder) == []
    assert validate_plugin(folder) == []
    assert not {name for name in set(sys.modules) - before if "_streamspace_check_" in name}
    assert "plugin" not in set(sys.modules) - before


def test_refuses_bad_names_and_existing_folders(tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError):
        scaffold("Bad Name", tmp_path)
    scaffold("hello", tmp_path)
    with pytest.raises(ScaffoldError, match="not empty"):
        scaffold("hello", tmp_path)
    assert class_name("9lives") == "P9livesPlugin"


def test_every_problem_is_named_with_its_path(tmp_path: Path) -> None:
    folder = scaffold("hello", tmp_path)
    manifest = json.loads((folder / "plugin.json").read_text())
    manifest.update(
        version="1.0",
        category="nonsense",
        permissions=["sessions:read", "root"],
        configSchema={"greeting": {"type": "strung"}},
    )
    del manifest["description"]
    (folder / "plugin.json").write_text(json.dumps(manifest))
    (folder / "plugin.py").write_text(
        "from runtime.sdk import Plugin\n\n"
        "class HelloPlugin(Plugin):\n"
        "    async def on_sesion_created(self, ctx, session):\n"
        "        return None\n"
        "    def on_user_created(self, ctx, user):\n"
        "        return None\n"
    )
    problems = {str(problem) for problem in validate_plugin(folder)}
    paths = {problem.split(":", 1)[0] for problem in problems}
    assert {"version", "category", "permissions.1", "description", "entrypoints.python"} <= paths
    assert any(path.startswith("configSchema") for path in paths), problems
    assert any("did you mean on_session_created" in p for p in problems), problems
    assert any("on_user_created must be declared with 'async def'" in p for p in problems)


def test_an_entrypoint_that_does_not_import_is_a_problem(tmp_path: Path) -> None:
    folder = scaffold("hello", tmp_path)
    (folder / "plugin.py").write_text("import not_a_module_anywhere\n")
    (problem,) = validate_plugin(folder)
    assert problem.path == "entrypoints.python"
    assert "not_a_module_anywhere" in problem.message
    (folder / "plugin.json").write_text("{not json")
    (problem,) = validate_plugin(folder)
    assert "not valid JSON" in problem.message


def test_settings_that_look_secret_but_are_not_marked_are_warned_about(tmp_path: Path) -> None:
    folder = scaffold("hello", tmp_path)
    manifest_file = folder / "plugin.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["configSchema"] |= {
        "apiKey": {"type": "string"},
        "routing_key": {"type": "string", "secret": True},
        "tokenUrl": {"type": "string", "format": "uri"},
        "requireToken": {"type": "boolean"},
        "channel": {"type": "string"},
        "servers": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"host": {"type": "string"}, "password": {"type": "string"}},
            },
        },
    }
    manifest_file.write_text(json.dumps(manifest))
    assert validate_plugin(folder) == []
    warned = [warning.path for warning in plugin_warnings(folder)]
    assert warned == ["configSchema.apiKey", "configSchema.servers.password"]


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("password", True),
        ("api_key", True),
        ("accessToken", True),
        ("clientSecret", True),
        ("webhookUrl", True),
        ("sentryDsn", True),
        ("privateKey", True),
        ("credentials", True),
        ("licenseKey", True),
        ("username", False),
        ("avatarUrl", False),
        ("passwordFile", False),
        ("secretName", False),
        ("keyId", False),
        ("dedupKeyTemplate", False),
    ],
)
def test_which_keys_look_secret(key: str, secret: bool) -> None:
    assert looks_secret(key) is secret


def test_the_built_in_plugins_mark_every_secret_looking_setting() -> None:
    plugins = Path(__file__).parents[2] / "plugins"
    for manifest in sorted(plugins.glob("*/plugin.json")):
        assert secret_warnings(json.loads(manifest.read_text())) == [], manifest

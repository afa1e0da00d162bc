"""Loading unpacked plugin code with importlib under private module names."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from runtime.hosting.loader import forget_modules, load_folder, module_name, requirement_problems
from runtime.hosting.registry import PluginLoadError, PluginRegistry
from tests.runtime.plugin_repo import write_plugin


def test_each_version_loads_under_its_own_private_name(tmp_path: Path) -> None:
    registry = PluginRegistry()
    one = load_folder(registry, write_plugin(tmp_path, "greeter", "1.0.0", "1"))
    two = load_folder(registry, write_plugin(tmp_path, "greeter", "2.0.0", "2"))
    assert one.cls.__module__ == "streamspace_plugin_greeter_1_0_0.plugin"
    assert two.cls.__module__ == "streamspace_plugin_greeter_2_0_0.plugin"
    # The folder's own submodule (marker) belongs to each version's package.
    assert sys.modules["streamspace_plugin_greeter_1_0_0.marker"].VERSION == "1"
    assert sys.modules["streamspace_plugin_greeter_2_0_0.marker"].VERSION == "2"
    assert "marker" not in sys.modules
    assert registry.get("greeter") == two
    assert two.hooks == frozenset({"on_event"}) and two.source.startswith("archive ")
    for version in ("1.0.0", "2.0.0"):
        forget_modules(module_name("greeter", version))
    assert not [
        m
        for m in sys.modules
        if m.startswith(("streamspace_plugin_greeter_1_0_0", "streamspace_plugin_greeter_2_0_0"))
    ]


def test_a_class_that_breaks_the_sdk_is_refused(tmp_path: Path) -> None:
    folder = write_plugin(tmp_path, "typo", "1.0.0", "1")
    (folder / "plugin.py").write_text(
        "from runtime.sdk import Plugin\n\n\nclass Greeter(Plugin):\n"
        "    async def on_sesion_created(self, ctx, session): ...\n"
    )
    with pytest.raises(PluginLoadError, match="did you mean on_session_created"):
        load_folder(PluginRegistry(), folder)
    assert module_name("typo", "1.0.0") not in sys.modules


def test_import_errors_and_missing_classes_are_reported(tmp_path: Path) -> None:
    folder = write_plugin(tmp_path, "broken", "1.0.0", "1")
    (folder / "plugin.py").write_text("import not_a_module_anywhere\n")
    with pytest.raises(PluginLoadError, match="ModuleNotFoundError"):
        load_folder(PluginRegistry(), folder)
    (folder / "plugin.py").write_text("X = 1\n")
    with pytest.raises(PluginLoadError, match="has no class Greeter"):
        load_folder(PluginRegistry(), folder)


def test_requirements_are_checked_against_installed_distributions() -> None:
    assert requirement_problems({"requirements": ["packaging>=1", "orjson"]}) == []
    assert requirement_problems({"requirements": ["packaging<1"]})[0].startswith(
        "packaging<1 is needed but "
    )
    assert requirement_problems({"requirements": ["no-such-dist-xyz"]}) == [
        "no-such-dist-xyz is not installed"
    ]
    assert requirement_problems({"requirements": ['x; python_version < "3"']}) == []
    assert "not a valid requirement" in requirement_problems({"requirements": ["!!"]})[0]

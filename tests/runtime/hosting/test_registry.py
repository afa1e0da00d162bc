"""Registering plugin classes: hooks checked against the SDK, entry points discovered."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from runtime.catalog.manifest import parse_manifest
from runtime.hosting.registry import (
    ENTRY_POINT_GROUP,
    PluginLoadError,
    PluginRegistry,
    discover_builtins,
    discover_entry_points,
)
from runtime.sdk import Plugin

MANIFEST = parse_manifest({"name": "typo", "version": "1.0.0", "type": "extension"})


class Typo(Plugin):
    async def on_sesion_created(self, ctx: Any, session: Mapping[str, Any]) -> None: ...


class Blocking(Plugin):
    def on_load(self, ctx: Any) -> None:  # type: ignore[override]
        ...


class Good(Plugin):
    async def on_user_login(self, ctx: Any, user: Mapping[str, Any]) -> None: ...


def test_a_misspelt_hook_is_refused_with_a_suggestion() -> None:
    registry = PluginRegistry()
    with pytest.raises(PluginLoadError) as refused:
        registry.register(Typo, MANIFEST, "test")
    message = refused.value.message
    assert "on_sesion_created is not a hook of the SDK" in message
    assert "did you mean on_session_created?" in message
    assert refused.value.fields[0].path == "entrypoints.python"
    assert registry.get("typo") is None


def test_a_hook_that_is_not_async_is_refused() -> None:
    with pytest.raises(PluginLoadError, match="on_load must be declared with 'async def'"):
        PluginRegistry().register(Blocking, MANIFEST, "test")


def test_a_class_that_is_not_a_plugin_is_refused() -> None:
    with pytest.raises(PluginLoadError, match=r"not a subclass of runtime\.sdk\.Plugin"):
        PluginRegistry().register(dict, MANIFEST, "test")


def test_a_good_class_is_registered_with_its_hooks() -> None:
    registry = PluginRegistry()
    spec = registry.register(Good, MANIFEST, "test")
    assert registry.get("typo") is spec
    assert spec.hooks == frozenset({"on_user_login"})


def test_builtins_are_discovered() -> None:
    registry = PluginRegistry()
    discover_builtins(registry)
    webhook = registry.get("streamspace-webhook")
    assert webhook is not None and webhook.source == "builtin"


@dataclass
class FakeEntryPoint:
    name: str
    value: str
    loader: Any
    dist: Any = None

    def load(self) -> Any:
        return self.loader()


def distribution(tmp_path: Path, name: str) -> type:
    """A module beside its plugin.json, as an installed distribution ships it."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "plugin.json").write_text(
        json.dumps({"name": name.replace("_", "-"), "version": "2.0.0", "type": "extension"})
    )
    (folder / "__init__.py").write_text(
        "from runtime.sdk import Plugin\n\n"
        "class Shipped(Plugin):\n"
        "    async def on_event(self, ctx, event):\n"
        "        return None\n"
    )
    module = importlib.import_module(name)
    cls: type = module.Shipped
    return cls


def test_entry_points_register_good_plugins_and_log_broken_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    shipped = distribution(tmp_path, "shipped_plugin")

    def broken() -> Any:
        raise ImportError("No module named 'vendor_sdk'")

    entries = [
        FakeEntryPoint("shipped", "shipped_plugin:Shipped", lambda: shipped),
        FakeEntryPoint("broken", "broken_plugin:Broken", broken),
    ]
    asked: list[str] = []

    def entry_points(*, group: str) -> list[FakeEntryPoint]:
        asked.append(group)
        return entries

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    registry = PluginRegistry()
    with caplog.at_level(logging.ERROR, logger="runtime.hosting.registry"):
        discover_entry_points(registry)
    assert asked == [ENTRY_POINT_GROUP]
    spec = registry.get("shipped-plugin")
    assert spec is not None and spec.cls is shipped
    assert spec.manifest.version == "2.0.0"
    assert [s.name for s in registry.all()] == ["shipped-plugin"]
    [record] = [r for r in caplog.records if r.name == "runtime.hosting.registry"]
    assert "broken" in record.getMessage() and "vendor_sdk" in record.getMessage()

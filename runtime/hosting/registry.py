"""Which plugin classes this process knows: built-in packages and installed distributions.

Every class is checked against the SDK when it is registered (pluggy's rule: hooks validated at
registration, not at first call), together with its manifest.

Example:
    >>> registry = PluginRegistry()
    >>> discover_builtins(registry)  # doctest: +SKIP
    >>> registry.get("streamspace-webhook").manifest.category  # doctest: +SKIP
    'integrations'
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import logging
from dataclasses import dataclass
from pathlib import Path

import orjson

from runtime.catalog.manifest import Manifest, parse_manifest
from runtime.core.errors import BadUserInput, FieldProblem
from runtime.sdk import Plugin, hook_problems, implemented_hooks

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "streamspace.plugins"
MANIFEST_FILES = ("plugin.json", "manifest.json")


class PluginLoadError(BadUserInput):
    """A plugin class or manifest that cannot be registered; `fields` names each problem."""


@dataclass(frozen=True)
class PluginSpec:
    """A registered plugin class with its validated manifest."""

    manifest: Manifest
    cls: type[Plugin]
    hooks: frozenset[str]
    source: str

    @property
    def name(self) -> str:
        return self.manifest.name


def read_manifest(folder: Path) -> Manifest:
    for filename in MANIFEST_FILES:
        path = folder / filename
        if path.exists():
            try:
                return parse_manifest(orjson.loads(path.read_bytes()))
            except orjson.JSONDecodeError as error:
                raise PluginLoadError(f"{path} is not valid JSON: {error}") from None
    raise PluginLoadError(f"no plugin.json in {folder}")


class PluginRegistry:
    """Plugin classes by name."""

    def __init__(self) -> None:
        self._specs: dict[str, PluginSpec] = {}

    def register(self, cls: type, manifest: Manifest, source: str) -> PluginSpec:
        problems = [FieldProblem("entrypoints.python", p) for p in hook_problems(cls)]
        if problems:
            raise PluginLoadError.from_problems(f"plugin {manifest.name}", problems)
        assert issubclass(cls, Plugin)
        spec = PluginSpec(manifest, cls, frozenset(implemented_hooks(cls)), source)
        self._specs[manifest.name] = spec
        return spec

    def unregister(self, name: str) -> None:
        self._specs.pop(name, None)

    def get(self, name: str) -> PluginSpec | None:
        return self._specs.get(name)

    def all(self) -> list[PluginSpec]:
        return sorted(self._specs.values(), key=lambda spec: spec.name)


def class_of(module_prefix: str, entrypoint: str) -> type:
    """The class named by a manifest's `module:Class`, imported below `module_prefix`."""
    module_name, _, class_name = entrypoint.partition(":")
    if not module_name or not class_name:
        raise PluginLoadError(f"entrypoints.python {entrypoint!r} must be 'module:Class'")
    module = importlib.import_module(
        f"{module_prefix}.{module_name}" if module_prefix else module_name
    )
    try:
        cls = getattr(module, class_name)
    except AttributeError:
        raise PluginLoadError(f"{module.__name__} has no class {class_name}") from None
    if not isinstance(cls, type):
        raise PluginLoadError(f"{module.__name__}.{class_name} is not a class")
    return cls


def discover_builtins(registry: PluginRegistry, package: str = "plugins") -> None:
    """Register every folder of the built-in package that holds a manifest.

    A folder that cannot be registered is logged and left out: one broken plugin must not keep
    the server, and every other plugin, from starting.
    """
    root = Path(importlib.import_module(package).__path__[0])
    for folder in sorted(path for path in root.iterdir() if path.is_dir()):
        if not any((folder / name).exists() for name in MANIFEST_FILES):
            continue
        try:
            manifest = read_manifest(folder)
            entrypoint = manifest.entrypoints.get("python", "plugin:Plugin")
            cls = class_of(f"{package}.{folder.name}", entrypoint)
            registry.register(cls, manifest, "builtin")
        except Exception as error:
            log.error(
                "built-in plugin not loaded",
                extra={"folder": folder.name, "error": f"{type(error).__name__}: {error}"},
            )


def discover_entry_points(registry: PluginRegistry) -> None:
    """Register installed distributions' plugins; a broken one is logged, not fatal."""
    # Looked up at call time (not imported by name) so tests and tools can substitute it.
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = entry.load()
            manifest = read_manifest(Path(inspect.getfile(cls)).parent)
            registry.register(
                cls, manifest, f"distribution {entry.dist.name if entry.dist else entry.value}"
            )
        except Exception as error:
            log.error(
                "plugin entry point %s (%s) not loaded: %s",
                entry.name,
                entry.value,
                error,
                extra={"entry_point": entry.name, "error": str(error)},
            )

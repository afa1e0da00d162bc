"""`plugin validate PATH`: every problem of a plugin folder, each with its path.

Checks plugin.json (required fields, semver, configSchema, known permissions, type and
category), imports the entrypoint from the folder (removing what it imported from
`sys.modules` afterwards) and checks the class against the SDK's hooks. `secret_warnings`
names settings whose key reads as a secret (a password, a token, an API key...) that the
schema does not mark secret: they would be stored in clear and shown as they are.
`list_routes` then loads the plugin in the testing harness, with its default configuration,
to show the HTTP routes it registers and which of them are public.

Example:
    >>> import tempfile
    >>> from runtime.devkit.scaffold import scaffold
    >>> folder = scaffold("hello", Path(tempfile.mkdtemp()))
    >>> validate_plugin(folder)
    []
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import re
import sys
import types
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from runtime.catalog.config_schema import is_secret, normalise_schema, schema_defaults
from runtime.catalog.manifest import manifest_problems, parse_manifest
from runtime.hosting.registry import MANIFEST_FILES
from runtime.sdk import Plugin, hook_problems
from runtime.sdk.extensions import PluginRoute
from runtime.sdk.testing import PluginHarness

# How long on_load may take to register its routes when they are listed.
LOAD_TIMEOUT = 10.0
REQUIRED = ("name", "version", "displayName", "description", "type", "category", "entrypoints")
CATEGORIES = frozenset(
    {
        "analytics",
        "authentication",
        "automation",
        "backup",
        "collaboration",
        "compliance",
        "development",
        "integrations",
        "monitoring",
        "notifications",
        "productivity",
        "security",
        "storage",
        "themes",
        "ui",
        "other",
    }
)

# Keys (lower-cased, without `_` and `-`) that read as secrets: holding one of these words...
SECRET_WORDS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "privatekey",
    "signingkey",
    "credential",
    "authorization",
    "webhookurl",
    "dsn",
)
# ...or ending in `key` (routingKey, licenseKey, hmacKey)...
SECRET_SUFFIX = "key"
# ...unless they name where or what a secret is rather than holding it (tokenUrl, passwordFile,
# secretName, keyId).
NOT_SECRET_SUFFIXES = ("url", "uri", "endpoint", "file", "path", "template", "name", "id", "ttl")
# Types whose values are never secret text (a flag, a number); objects are looked into.
_NOT_TEXT = {"boolean", "integer", "number", "null"}
_SEPARATORS = re.compile(r"[_\-\s]")


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def looks_secret(key: str) -> bool:
    """Whether a configuration key reads as one that holds a secret value."""
    name = _SEPARATORS.sub("", key).lower()
    if "webhookurl" in name:
        return True
    if name.endswith(NOT_SECRET_SUFFIXES):
        return False
    return name.endswith(SECRET_SUFFIX) or any(word in name for word in SECRET_WORDS)


def _holds_text(schema: Mapping[str, Any]) -> bool:
    kind = schema.get("type")
    kinds = set(kind) if isinstance(kind, list) else {kind}
    return not kinds <= _NOT_TEXT | {"object"}


def _unmarked_secrets(schema: Any, path: str) -> Iterator[str]:
    """Paths of properties, at any depth, whose key looks secret but which are not marked."""
    if not isinstance(schema, Mapping) or is_secret(schema):
        return
    properties = schema.get("properties")
    for name, spec in properties.items() if isinstance(properties, Mapping) else []:
        if not isinstance(spec, Mapping) or is_secret(spec):
            continue
        where = f"{path}.{name}"
        if looks_secret(str(name)) and _holds_text(spec):
            yield where
        yield from _unmarked_secrets(spec, where)
    for keyword in ("items", "additionalProperties"):
        yield from _unmarked_secrets(schema.get(keyword), path)


def secret_warnings(manifest: Any) -> list[Problem]:
    """Settings whose key looks secret but which the configSchema does not mark secret."""
    if not isinstance(manifest, Mapping) or not isinstance(manifest.get("configSchema"), Mapping):
        return []
    schema = normalise_schema(manifest["configSchema"])
    return [
        Problem(
            path,
            'looks like a secret but is not marked secret: add "secret": true (or '
            '"writeOnly": true, "format": "password") so it is stored encrypted, '
            "shown masked and kept out of errors and logs",
        )
        for path in _unmarked_secrets(schema, "configSchema")
    ]


def plugin_warnings(folder: Path) -> list[Problem]:
    """What a plugin folder should fix although it validates (see `secret_warnings`)."""
    path = manifest_path(folder) if folder.is_dir() else None
    if path is None:
        return []
    try:
        return secret_warnings(orjson.loads(path.read_bytes()))
    except orjson.JSONDecodeError:
        return []


def manifest_path(folder: Path) -> Path | None:
    for filename in MANIFEST_FILES:
        if (folder / filename).is_file():
            return folder / filename
    return None


def _manifest_checks(data: Any) -> list[Problem]:
    problems = [Problem(p.path, p.message) for p in manifest_problems(data)]
    if not isinstance(data, dict):
        return problems
    named = {p.path for p in problems}
    for key in REQUIRED:
        if key not in data and key not in named:
            problems.append(Problem(key, "is required"))
    category = data.get("category")
    if isinstance(category, str) and category not in CATEGORIES:
        allowed = ", ".join(sorted(CATEGORIES))
        problems.append(Problem("category", f"{category!r} is not one of {allowed}"))
    entrypoints = data.get("entrypoints")
    if isinstance(entrypoints, dict) and "python" not in entrypoints:
        problems.append(Problem("entrypoints.python", "is required ('module:Class')"))
    return problems


def load_class(folder: Path, entrypoint: str) -> type:
    """Import `module:Class` from `folder` under a throw-away package name.

    What the import added to sys.modules under that name is removed again, so validating a
    folder twice (or two folders with a `plugin` module each) never sees stale code.
    """
    module_name, _, class_name = entrypoint.partition(":")
    if not module_name or not class_name:
        raise ValueError(f"{entrypoint!r} must be 'module:Class'")
    package = f"_streamspace_check_{uuid.uuid4().hex}"
    holder = types.ModuleType(package)
    holder.__path__ = [str(folder.resolve())]
    sys.modules[package] = holder
    try:
        module = importlib.import_module(f"{package}.{module_name}")
        cls = getattr(module, class_name, None)
        if cls is None:
            raise ValueError(f"module {module_name} has no attribute {class_name}")
        if not isinstance(cls, type):
            raise ValueError(f"{module_name}.{class_name} is not a class")
        return cls
    finally:
        for name in [key for key in sys.modules if key == package or key.startswith(package + ".")]:
            del sys.modules[name]
        importlib.invalidate_caches()


def validate_plugin(folder: Path) -> list[Problem]:
    """Every problem of the plugin in `folder`; empty when it is fit to pack and publish."""
    if not folder.is_dir():
        return [Problem("", f"{folder} is not a folder")]
    path = manifest_path(folder)
    if path is None:
        return [Problem("plugin.json", f"no plugin.json in {folder}")]
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as error:
        return [Problem(path.name, f"is not valid JSON: {error}")]
    problems = _manifest_checks(data)
    entrypoints = data.get("entrypoints") if isinstance(data, dict) else None
    entrypoint = entrypoints.get("python") if isinstance(entrypoints, dict) else None
    if isinstance(entrypoint, str):
        try:
            cls = load_class(folder, entrypoint)
        except Exception as error:
            problems.append(Problem("entrypoints.python", f"cannot import {entrypoint!r}: {error}"))
        else:
            problems += [Problem("entrypoints.python", p) for p in hook_problems(cls)]
    elif entrypoint is not None:
        problems.append(Problem("entrypoints.python", "must be a string 'module:Class'"))
    return problems


@dataclass(frozen=True)
class RouteListing:
    """The HTTP routes a plugin registers when loaded, and who may call each."""

    plugin: str
    routes: list[PluginRoute]
    # Why the list may be short: on_load failed with the default configuration.
    note: str | None = None

    def lines(self) -> list[str]:
        """What `plugin validate` prints."""
        if not self.routes:
            shown = ["routes: none"]
        else:
            shown = [f"routes (under /plugins/{self.plugin}/ while active):"]
            shown += [f"  {_shown_route(route)}" for route in self.routes]
        if self.note:
            shown.append(f"  note: {self.note}")
        return shown


def _shown_route(route: PluginRoute) -> str:
    who = (
        "PUBLIC: anyone may call it, without a token"
        if route.role is None
        else f"needs the {route.role.value} role"
    )
    return f"{','.join(route.methods)} {route.path}  {who}"


async def list_routes(folder: Path) -> RouteListing:
    """Load the plugin in `folder` (valid: see validate_plugin) in the testing harness with
    its default configuration, and list the routes its on_load and on_enable register."""
    path = manifest_path(folder)
    if path is None:
        raise ValueError(f"no plugin.json in {folder}")
    manifest = parse_manifest(orjson.loads(path.read_bytes()))
    cls = load_class(folder, manifest.entrypoints["python"])
    if not issubclass(cls, Plugin):
        raise ValueError(f"{cls.__name__} is not a subclass of runtime.sdk.Plugin")
    # Not checked against configSchema: settings an admin must supply have no default.
    config = {**schema_defaults(manifest.config_schema), **manifest.default_config}
    harness = PluginHarness(
        cls, config=config, name=manifest.name, permissions=manifest.permissions
    )
    note = None
    try:
        async with asyncio.timeout(LOAD_TIMEOUT):
            await harness.load()
    except Exception as error:
        note = (
            f"loading with the default configuration stopped ({type(error).__name__}: "
            f"{error}); the routes registered before that are listed"
        )
    routes = list(harness.api.routes)
    with contextlib.suppress(Exception):
        await harness.unload()
    return RouteListing(manifest.name, routes, note)

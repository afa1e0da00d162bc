"""Plugin manifests (plugin.json): parsing and validation with a message per problem.

Example:
    >>> manifest = parse_manifest({"name": "streamspace-echo", "version": "1.0.0",
    ...                            "type": "extension", "category": "integrations"})
    >>> manifest.display_name
    'streamspace-echo'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runtime.catalog.config_schema import (
    is_standard_schema,
    normalise_schema,
    schema_problems,
    validate_config,
)
from runtime.catalog.run_settings import RunSettings, parse_run_settings
from runtime.core.errors import BadUserInput, FieldProblem

PLUGIN_TYPES = frozenset({"extension", "webhook", "integration", "api", "ui", "theme"})
PERMISSIONS = frozenset(
    {
        "sessions:read",
        "sessions:write",
        "users:read",
        "users:write",
        "templates:read",
        "quotas:read",
        "audit:read",
        "audit:write",
        "events:publish",
        "storage",
        "network",
        "admin",
    }
)
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
# Semantic Versioning 2.0.0, the form the original manifests use.
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)


@dataclass(frozen=True)
class Manifest:
    """A validated plugin.json; `config_schema` is already normalised to JSON Schema."""

    name: str
    version: str
    display_name: str
    description: str
    author: str
    license: str
    plugin_type: str
    category: str
    tags: list[str]
    icon: str | None
    config_schema: dict[str, Any]
    default_config: dict[str, Any]
    permissions: list[str]
    dependencies: dict[str, str]
    entrypoints: dict[str, str]
    # `concurrency` and `timeoutSeconds`: how the runtime runs it (an installation may override).
    run_settings: RunSettings
    raw: dict[str, Any] = field(repr=False)


def _text(
    data: Mapping[str, Any],
    key: str,
    problems: list[FieldProblem],
    *,
    required: bool = False,
    max_length: int | None = None,
) -> str:
    value = data.get(key)
    if value is None:
        if required:
            problems.append(FieldProblem(key, "is required"))
        return ""
    if not isinstance(value, str):
        problems.append(FieldProblem(key, "must be a string"))
        return ""
    # The catalog's columns are this long; a longer value would fail the whole sync's write.
    if max_length is not None and len(value) > max_length:
        problems.append(FieldProblem(key, f"must be at most {max_length} characters"))
        return ""
    return value


def _strings(
    data: Mapping[str, Any], key: str, problems: list[FieldProblem], max_length: int = 100
) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        problems.append(FieldProblem(key, "must be a list of strings"))
        return []
    for index, item in enumerate(value):
        if not item or len(item) > max_length:
            problems.append(FieldProblem(f"{key}.{index}", f"must be 1 to {max_length} characters"))
    return list(value)


def _mapping(data: Mapping[str, Any], key: str, problems: list[FieldProblem]) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        problems.append(FieldProblem(key, "must be an object"))
        return {}
    return dict(value)


def manifest_problems(data: Any) -> list[FieldProblem]:
    """Every problem of a manifest, each named by its path; empty when it is valid."""
    try:
        parse_manifest(data)
    except BadUserInput as error:
        return error.fields
    return []


def _schema(
    data: Mapping[str, Any], problems: list[FieldProblem]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The normalised configSchema and the defaultConfig, with their problems noted."""
    raw = _mapping(data, "configSchema", problems)
    schema = normalise_schema(raw)
    schema_faults = schema_problems(schema, per_property=bool(raw) and not is_standard_schema(raw))
    problems += schema_faults
    default_config = _mapping(data, "defaultConfig", problems)
    # Defaults need not name required settings (the admin supplies those at install).
    if not schema_faults:
        for problem in validate_config({**schema, "required": []}, default_config):
            problems.append(FieldProblem(f"defaultConfig.{problem.path}", problem.message))
    return schema, default_config


def _identity(data: Mapping[str, Any], problems: list[FieldProblem]) -> tuple[str, str, str]:
    """Name, version and type, each checked."""
    name = _text(data, "name", problems, required=True)
    if name and not _NAME.match(name):
        problems.append(FieldProblem("name", "must be lowercase letters, digits, '-', '.', '_'"))
    version = _text(data, "version", problems, required=True, max_length=50)
    if version and not _SEMVER.match(version):
        problems.append(FieldProblem("version", f"{version!r} is not a semantic version (1.2.3)"))
    plugin_type = _text(data, "type", problems) or "extension"
    if plugin_type not in PLUGIN_TYPES:
        allowed = ", ".join(sorted(PLUGIN_TYPES))
        problems.append(FieldProblem("type", f"{plugin_type!r} is not one of {allowed}"))
    return name, version, plugin_type


def parse_manifest(data: Any) -> Manifest:
    """A Manifest, or BadUserInput naming every problem."""
    if not isinstance(data, Mapping):
        raise BadUserInput(
            "the manifest must be a JSON object", [FieldProblem("", "not an object")]
        )
    problems: list[FieldProblem] = []
    name, version, plugin_type = _identity(data, problems)
    permissions = _strings(data, "permissions", problems)
    for index, permission in enumerate(permissions):
        if permission not in PERMISSIONS:
            problems.append(
                FieldProblem(f"permissions.{index}", f"unknown permission {permission!r}")
            )
    schema, default_config = _schema(data, problems)
    dependencies = _mapping(data, "dependencies", problems)
    entrypoints = _mapping(data, "entrypoints", problems)
    # Every field is read before deciding, so one answer names every problem.
    display_name = _text(data, "displayName", problems, max_length=255) or name
    description = _text(data, "description", problems)
    author = _text(data, "author", problems)
    license_ = _text(data, "license", problems)
    category = _text(data, "category", problems, max_length=100) or "other"
    tags = _strings(data, "tags", problems)
    icon = _text(data, "icon", problems) or None
    run_settings, setting_problems = parse_run_settings(data)
    problems += setting_problems
    if problems:
        raise BadUserInput.from_problems(f"manifest {name or '(unnamed)'}", problems)
    return Manifest(
        name=name,
        version=version,
        display_name=display_name,
        description=description,
        author=author,
        license=license_,
        plugin_type=plugin_type,
        category=category,
        tags=tags,
        icon=icon,
        config_schema=schema,
        default_config=default_config,
        permissions=permissions,
        dependencies={str(k): str(v) for k, v in dependencies.items()},
        entrypoints={str(k): str(v) for k, v in entrypoints.items()},
        run_settings=run_settings,
        raw=dict(data),
    )

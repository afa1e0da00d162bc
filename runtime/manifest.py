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

from runtime.config_schema import normalise_schema, schema_problems, validate_config
from runtime.errors import BadUserInput, FieldProblem

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
    raw: dict[str, Any] = field(repr=False)


def _text(
    data: Mapping[str, Any], key: str, problems: list[FieldProblem], *, required: bool = False
) -> str:
    value = data.get(key)
    if value is None:
        if required:
            problems.append(FieldProblem(key, "is required"))
        return ""
    if not isinstance(value, str):
        problems.append(FieldProblem(key, "must be a string"))
        return ""
    return value


def _strings(data: Mapping[str, Any], key: str, problems: list[FieldProblem]) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        problems.append(FieldProblem(key, "must be a list of strings"))
        return []
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


def parse_manifest(data: Any) -> Manifest:
    """A Manifest, or BadUserInput naming every problem."""
    if not isinstance(data, Mapping):
        raise BadUserInput(
            "the manifest must be a JSON object", [FieldProblem("", "not an object")]
        )
    problems: list[FieldProblem] = []
    name = _text(data, "name", problems, required=True)
    if name and not _NAME.match(name):
        problems.append(FieldProblem("name", "must be lowercase letters, digits, '-', '.', '_'"))
    version = _text(data, "version", problems, required=True)
    if version and not _SEMVER.match(version):
        problems.append(FieldProblem("version", f"{version!r} is not a semantic version (1.2.3)"))
    plugin_type = _text(data, "type", problems) or "extension"
    if plugin_type not in PLUGIN_TYPES:
        allowed = ", ".join(sorted(PLUGIN_TYPES))
        problems.append(FieldProblem("type", f"{plugin_type!r} is not one of {allowed}"))
    permissions = _strings(data, "permissions", problems)
    for index, permission in enumerate(permissions):
        if permission not in PERMISSIONS:
            problems.append(
                FieldProblem(f"permissions.{index}", f"unknown permission {permission!r}")
            )
    schema = normalise_schema(_mapping(data, "configSchema", problems))
    problems += schema_problems(schema)
    default_config = _mapping(data, "defaultConfig", problems)
    if not schema_problems(schema):
        for problem in validate_config({**schema, "required": []}, default_config):
            problems.append(FieldProblem(f"defaultConfig.{problem.path}", problem.message))
    dependencies = _mapping(data, "dependencies", problems)
    entrypoints = _mapping(data, "entrypoints", problems)
    if problems:
        raise BadUserInput.from_problems(f"manifest {name or '(unnamed)'}", problems)
    return Manifest(
        name=name,
        version=version,
        display_name=_text(data, "displayName", problems) or name,
        description=_text(data, "description", problems),
        author=_text(data, "author", problems),
        license=_text(data, "license", problems),
        plugin_type=plugin_type,
        category=_text(data, "category", problems) or "other",
        tags=_strings(data, "tags", problems),
        icon=_text(data, "icon", problems) or None,
        config_schema=schema,
        default_config=default_config,
        permissions=permissions,
        dependencies={str(k): str(v) for k, v in dependencies.items()},
        entrypoints={str(k): str(v) for k, v in entrypoints.items()},
        raw=dict(data),
    )

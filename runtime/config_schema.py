"""Plugin configuration schemas: normalising, checking, defaults, secrets and validation.

A manifest's configSchema is either standard JSON Schema or the original per-property map,
where each property carries its own `"required": true`. Both become one JSON Schema here.

Example:
    >>> schema = normalise_schema({"webhookUrl": {"type": "string", "required": True,
    ...                                           "secret": True}})
    >>> schema["required"], sorted(secret_keys(schema))
    (['webhookUrl'], ['webhookUrl'])
    >>> [p.path for p in validate_config(schema, {})]
    ['webhookUrl']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError, ValidationError

from runtime.errors import FieldProblem

_STANDARD_KEYWORDS = {"$schema", "type", "properties", "$defs", "allOf", "anyOf", "oneOf"}
_FORMATS = FormatChecker()
MASK = "********"


def normalise_schema(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """One JSON Schema object for either accepted spelling of a configSchema."""
    if not raw:
        return {"type": "object", "properties": {}}
    if _STANDARD_KEYWORDS & raw.keys():
        return dict(raw)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, spec in raw.items():
        prop = dict(spec) if isinstance(spec, Mapping) else {}
        if prop.pop("required", False) is True:
            required.append(name)
        properties[name] = prop
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        # The per-property map lists every key a plugin reads, so an unknown key is a typo.
        "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    return schema


def schema_problems(schema: Mapping[str, Any], path: str = "configSchema") -> list[FieldProblem]:
    """What is wrong with the schema itself (empty when it is valid JSON Schema)."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        where = ".".join(str(part) for part in error.absolute_path)
        return [FieldProblem(f"{path}.{where}" if where else path, error.message)]
    if schema.get("type", "object") != "object":
        return [FieldProblem(f"{path}.type", "a configuration schema must describe an object")]
    return []


def is_secret(prop: Mapping[str, Any]) -> bool:
    return bool(prop.get("secret") or prop.get("writeOnly") or prop.get("format") == "password")


def secret_keys(schema: Mapping[str, Any]) -> set[str]:
    """Top-level properties stored encrypted and never returned."""
    properties = schema.get("properties", {})
    return {
        name for name, prop in properties.items() if isinstance(prop, Mapping) and is_secret(prop)
    }


def schema_defaults(schema: Mapping[str, Any]) -> dict[str, Any]:
    properties = schema.get("properties", {})
    return {
        name: prop["default"]
        for name, prop in properties.items()
        if isinstance(prop, Mapping) and "default" in prop
    }


def _problem(error: ValidationError) -> list[FieldProblem]:
    base = ".".join(str(part) for part in error.absolute_path)

    def join(name: str) -> str:
        return f"{base}.{name}" if base else name

    if error.validator == "required" and isinstance(error.instance, Mapping):
        missing = [name for name in error.validator_value if name not in error.instance]
        return [FieldProblem(join(name), "is required") for name in missing]
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        known = error.schema.get("properties", {}) if isinstance(error.schema, Mapping) else {}
        extra = [name for name in error.instance if name not in known]
        return [FieldProblem(join(name), "is not a known setting") for name in extra]
    message = error.message
    if error.validator in {"format", "type", "enum", "minimum", "maximum"}:
        message = f"{error.message} (expected {error.validator} {error.validator_value!r})"
    return [FieldProblem(base, message)]


def validate_config(schema: Mapping[str, Any], config: Mapping[str, Any]) -> list[FieldProblem]:
    """Every problem of `config` against `schema`, sorted by path; empty when valid."""
    validator = Draft202012Validator(schema, format_checker=_FORMATS)
    problems = [p for error in validator.iter_errors(dict(config)) for p in _problem(error)]
    return sorted(set(problems), key=lambda p: (p.path, p.message))


def mask_secrets(config: Mapping[str, Any], secrets: set[str]) -> dict[str, Any]:
    """The configuration as shown to clients: each secret that is set appears as a mask."""
    return {key: (MASK if key in secrets else value) for key, value in config.items()}

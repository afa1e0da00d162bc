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

from collections.abc import Iterable, Mapping
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker  # type: ignore[import-untyped]
from jsonschema.exceptions import ValidationError  # type: ignore[import-untyped]

from runtime.errors import FieldProblem

# Keywords that only a standard schema has at its top level. `type` counts only as a string:
# in the per-property map, `type` may be the name of a setting.
_STANDARD_KEYWORDS = {"$schema", "properties", "$defs", "allOf", "anyOf", "oneOf"}
_FORMATS = FormatChecker()
_META = Draft202012Validator(Draft202012Validator.META_SCHEMA)
MASK = "********"


def is_standard_schema(raw: Mapping[str, Any]) -> bool:
    """True for standard JSON Schema, False for the original per-property map."""
    return isinstance(raw.get("type"), str) or bool(_STANDARD_KEYWORDS & raw.keys())


def _property(spec: Any, required: list[str], name: str) -> Any:
    """One property's schema without the per-property `required` flag, noted in `required`."""
    if not isinstance(spec, Mapping):
        # Kept as written, so schema_problems names it rather than it passing as `{}`.
        return spec
    prop = dict(spec)
    flag = prop.get("required")
    if isinstance(flag, bool):
        del prop["required"]
        if flag:
            required.append(name)
    return prop


def normalise_schema(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """One JSON Schema object for either accepted spelling of a configSchema."""
    if not raw:
        return {"type": "object", "properties": {}}
    required: list[str] = []
    if is_standard_schema(raw):
        schema = dict(raw)
        properties = schema.get("properties")
        if isinstance(properties, Mapping):
            # Standard schemas written by hand often keep the per-property flag as well.
            schema["properties"] = {
                name: _property(spec, required, name) for name, spec in properties.items()
            }
            listed = schema.get("required")
            if required and (listed is None or isinstance(listed, list)):
                schema["required"] = list(dict.fromkeys([*(listed or []), *required]))
        return schema
    schema = {
        "type": "object",
        "properties": {name: _property(spec, required, name) for name, spec in raw.items()},
        # The per-property map lists every key a plugin reads, so an unknown key is a typo.
        "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    return schema


def _first_per_path(problems: Iterable[FieldProblem]) -> list[FieldProblem]:
    """One problem per path (the first seen), sorted by path, so a form shows one message."""
    chosen: dict[str, FieldProblem] = {}
    for problem in problems:
        chosen.setdefault(problem.path, problem)
    return sorted(chosen.values(), key=lambda p: p.path)


def schema_problems(
    schema: Mapping[str, Any], path: str = "configSchema", *, per_property: bool = False
) -> list[FieldProblem]:
    """What is wrong with the schema itself (empty when it is valid JSON Schema).

    With `per_property`, paths name the property as the author wrote it (`webhookUrl.type`),
    not as normalised (`properties.webhookUrl.type`).
    """
    problems: list[FieldProblem] = []
    for error in _META.iter_errors(schema):
        parts = [str(part) for part in error.absolute_path]
        if per_property and parts[:1] == ["properties"]:
            parts = parts[1:]
        where = ".".join(parts)
        problems.append(FieldProblem(f"{path}.{where}" if where else path, error.message))
    if not problems and schema.get("type", "object") != "object":
        problems.append(
            FieldProblem(f"{path}.type", "a configuration schema must describe an object")
        )
    return _first_per_path(problems)


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


def _message(error: ValidationError) -> str:
    """A message for one failed keyword that never repeats the value, which may be a secret."""
    expected = error.validator_value
    messages = {
        "type": f"must be of type {expected}",
        "format": f"must be a valid {expected}",
        "enum": f"must be one of {expected!r}",
        "const": f"must be {expected!r}",
        "minimum": f"must be at least {expected}",
        "maximum": f"must be at most {expected}",
        "exclusiveMinimum": f"must be more than {expected}",
        "exclusiveMaximum": f"must be less than {expected}",
        "minLength": f"must be at least {expected} characters",
        "maxLength": f"must be at most {expected} characters",
        "pattern": f"must match the pattern {expected!r}",
        "minItems": f"must have at least {expected} items",
        "maxItems": f"must have at most {expected} items",
    }
    if error.validator in messages:
        return messages[error.validator]
    secret = isinstance(error.schema, Mapping) and is_secret(error.schema)
    return f"is not valid ({error.validator})" if secret else str(error.message)


def _problems(error: ValidationError) -> list[FieldProblem]:
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
    return [FieldProblem(base, _message(error))]


def _priority(error: ValidationError) -> int:
    # A wrong type explains every other failure at the same path, so it is the one shown.
    return 0 if error.validator == "type" else 1


def validate_config(schema: Mapping[str, Any], config: Mapping[str, Any]) -> list[FieldProblem]:
    """One problem per bad path of `config` against `schema`, sorted by path; empty when valid."""
    validator = Draft202012Validator(schema, format_checker=_FORMATS)
    errors = sorted(validator.iter_errors(dict(config)), key=_priority)
    return _first_per_path(problem for error in errors for problem in _problems(error))


def mask_secrets(config: Mapping[str, Any], secrets: set[str]) -> dict[str, Any]:
    """The configuration as shown to clients: each secret that is set appears as a mask."""
    return {
        key: (MASK if key in secrets and value not in (None, "") else value)
        for key, value in config.items()
    }

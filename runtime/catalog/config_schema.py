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
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker  # type: ignore[import-untyped]
from jsonschema.exceptions import ValidationError  # type: ignore[import-untyped]

from runtime.core.errors import FieldProblem

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
    """Top-level properties that are secret as a whole (nested ones: `secret_shape`)."""
    properties = schema.get("properties", {})
    return {
        name for name, prop in properties.items() if isinstance(prop, Mapping) and is_secret(prop)
    }


@dataclass(frozen=True)
class SecretShape:
    """Where a configuration's secret values sit: the whole value (`whole`), or inside it, in
    named properties, in each item of an array, in the values of other keys of a map."""

    whole: bool = False
    properties: Mapping[str, SecretShape] = field(default_factory=dict)
    items: SecretShape | None = None
    others: SecretShape | None = None

    @classmethod
    def of_keys(cls, keys: Iterable[str]) -> SecretShape:
        """Top-level keys that are secret as a whole."""
        return cls(properties={key: WHOLE for key in keys})

    def child(self, key: str) -> SecretShape | None:
        """Where secrets sit in the value of `key` of an object this shape describes."""
        found = self.properties.get(key)
        return found if found is not None else self.others

    def merged(self, other: SecretShape) -> SecretShape:
        """Secrets where either shape has them (branches of allOf, anyOf, oneOf)."""
        if self.whole or other.whole:
            return WHOLE
        properties: dict[str, SecretShape] = {}
        for name in {*self.properties, *other.properties}:
            both = _either(self.properties.get(name), other.properties.get(name))
            if both is not None:
                properties[name] = both
        return SecretShape(
            properties=properties,
            items=_either(self.items, other.items),
            others=_either(self.others, other.others),
        )


WHOLE = SecretShape(whole=True)
# A `$ref` chain or nesting deeper than this is not followed (a recursive schema).
MAX_SHAPE_DEPTH = 32


def _either(first: SecretShape | None, second: SecretShape | None) -> SecretShape | None:
    if first is None:
        return second
    if second is None:
        return first
    return first.merged(second)


def _resolved(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """A local `$ref` (`#/$defs/...`) resolved in `root`; anything else as it is."""
    reference = schema.get("$ref")
    if not isinstance(reference, str) or not reference.startswith("#/"):
        return schema
    target: Any = root
    for part in reference[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(target, Mapping) or part not in target:
            return schema
        target = target[part]
    return target if isinstance(target, Mapping) else schema


def secret_shape(
    schema: Any, root: Mapping[str, Any] | None = None, depth: int = 0
) -> SecretShape | None:
    """Where the values of `schema` are secret, at any depth; None when nowhere.

    A value is secret when its schema says `writeOnly: true`, `format: password` or (the
    seed's spelling) `secret: true`. Properties, array items, additionalProperties, local
    `$ref`s and the branches of allOf/anyOf/oneOf are followed.
    """
    if not isinstance(schema, Mapping) or depth > MAX_SHAPE_DEPTH:
        return None
    root = schema if root is None else root
    schema = _resolved(schema, root)
    if is_secret(schema):
        return WHOLE
    shape: SecretShape | None = None
    properties = schema.get("properties")
    if isinstance(properties, Mapping):
        found = {
            name: child
            for name, spec in properties.items()
            if (child := secret_shape(spec, root, depth + 1)) is not None
        }
        if found:
            shape = SecretShape(properties=found)
    items = secret_shape(schema.get("items"), root, depth + 1)
    if items is not None:
        shape = _either(shape, SecretShape(items=items))
    others = secret_shape(schema.get("additionalProperties"), root, depth + 1)
    if others is not None:
        shape = _either(shape, SecretShape(others=others))
    for keyword in ("allOf", "anyOf", "oneOf"):
        branches = schema.get(keyword)
        for branch in branches if isinstance(branches, list) else []:
            shape = _either(shape, secret_shape(branch, root, depth + 1))
    return shape


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

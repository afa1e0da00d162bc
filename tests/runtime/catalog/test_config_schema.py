"""Configuration schemas: both spellings of configSchema, defaults, secrets and validation."""

from typing import Any

from runtime.catalog.config_schema import (
    MASK,
    SecretShape,
    is_secret,
    normalise_schema,
    schema_defaults,
    schema_problems,
    secret_keys,
    secret_shape,
    validate_config,
)
from runtime.catalog.secret_config import mask_secrets

SEED_SCHEMA: dict[str, Any] = {
    "webhookUrl": {"type": "string", "required": True, "format": "uri"},
    "channel": {"type": "string", "default": "#general"},
    "rateLimit": {"type": "integer", "default": 20, "minimum": 1, "maximum": 100},
    "level": {"type": "string", "enum": ["info", "error"]},
}
STANDARD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "webhookUrl": {"type": "string", "format": "uri"},
        "channel": {"type": "string", "default": "#general"},
    },
    "required": ["webhookUrl"],
}


def paths(schema: dict[str, Any], config: dict[str, Any]) -> list[str]:
    return [problem.path for problem in validate_config(schema, config)]


def test_the_seed_per_property_format_becomes_json_schema_with_a_required_list() -> None:
    schema = normalise_schema(SEED_SCHEMA)
    assert schema["type"] == "object"
    assert schema["required"] == ["webhookUrl"]
    assert "required" not in schema["properties"]["webhookUrl"]
    assert schema_problems(schema) == []


def test_standard_json_schema_is_kept_as_written() -> None:
    schema = normalise_schema(STANDARD_SCHEMA)
    assert schema == STANDARD_SCHEMA
    assert schema_problems(schema) == []


def test_a_per_property_required_flag_inside_a_standard_schema_is_normalised_too() -> None:
    schema = normalise_schema(
        {"type": "object", "properties": {"token": {"type": "string", "required": True}}}
    )
    assert schema["required"] == ["token"]
    assert schema_problems(schema) == []


def test_a_setting_named_type_does_not_make_a_per_property_map_look_standard() -> None:
    schema = normalise_schema({"type": {"type": "string", "required": True}})
    assert schema["properties"] == {"type": {"type": "string"}}
    assert schema["required"] == ["type"]


def test_no_schema_means_an_empty_object_schema() -> None:
    assert normalise_schema(None) == {"type": "object", "properties": {}}
    assert validate_config(normalise_schema({}), {"anything": 1}) == []


def test_unknown_keys_are_refused_for_the_per_property_format_only() -> None:
    assert paths(
        normalise_schema(SEED_SCHEMA), {"webhookUrl": "https://x.test", "chanel": "#a"}
    ) == ["chanel"]
    assert paths(STANDARD_SCHEMA, {"webhookUrl": "https://x.test", "chanel": "#a"}) == []


def test_defaults_come_from_each_property() -> None:
    assert schema_defaults(normalise_schema(SEED_SCHEMA)) == {
        "channel": "#general",
        "rateLimit": 20,
    }


def test_a_property_is_secret_when_marked_secret_write_only_or_password() -> None:
    schema = normalise_schema(
        {
            "a": {"type": "string", "secret": True},
            "b": {"type": "string", "writeOnly": True},
            "c": {"type": "string", "format": "password"},
            "d": {"type": "string"},
        }
    )
    assert secret_keys(schema) == {"a", "b", "c"}
    assert not is_secret({"type": "string", "secret": False})


def test_a_valid_config_has_no_problems() -> None:
    config = {"webhookUrl": "https://hooks.slack.test/T0", "rateLimit": 50, "level": "info"}
    assert validate_config(normalise_schema(SEED_SCHEMA), config) == []


def test_each_bad_path_is_reported_once() -> None:
    config = {"rateLimit": 0, "channel": 5, "level": "debug"}
    problems = validate_config(normalise_schema(SEED_SCHEMA), config)
    assert [p.path for p in problems] == ["channel", "level", "rateLimit", "webhookUrl"]
    messages = {p.path: p.message for p in problems}
    assert messages["webhookUrl"] == "is required"
    assert "string" in messages["channel"]
    assert "info" in messages["level"]
    assert "at least 1" in messages["rateLimit"]


def test_a_value_of_the_wrong_type_is_one_problem_even_when_other_keywords_fail() -> None:
    schema = normalise_schema({"level": {"type": "string", "enum": ["info"]}})
    problems = validate_config(schema, {"level": 3})
    assert len(problems) == 1
    assert "type string" in problems[0].message


def test_a_bad_uri_and_a_number_above_the_maximum_are_reported() -> None:
    schema = normalise_schema(SEED_SCHEMA)
    problems = validate_config(schema, {"webhookUrl": "not a url", "rateLimit": 101})
    assert {p.path: p.message for p in problems} == {
        "rateLimit": "must be at most 100",
        "webhookUrl": "must be a valid uri",
    }


def test_a_problem_never_repeats_a_secret_value() -> None:
    schema = normalise_schema(
        {"token": {"type": "string", "secret": True, "pattern": "^xoxb-", "format": "uri"}}
    )
    problems = validate_config(schema, {"token": "hunter2-secret"})
    assert problems
    assert all("hunter2" not in p.message for p in problems)


def test_an_invalid_schema_is_reported_with_the_path_of_each_problem() -> None:
    problems = schema_problems(
        normalise_schema({"a": {"type": "strang"}, "b": "text"}), per_property=True
    )
    assert [p.path for p in problems] == ["configSchema.a.type", "configSchema.b"]


def test_a_schema_that_does_not_describe_an_object_is_refused() -> None:
    assert [p.path for p in schema_problems({"type": "string"})] == ["configSchema.type"]


def test_masking_hides_each_secret_that_is_set_and_keeps_the_rest() -> None:
    config = {"token": "xoxb-1", "unset": None, "channel": "#a"}
    assert mask_secrets(config, SecretShape.of_keys({"token", "unset"})) == {
        "token": MASK,
        "unset": None,
        "channel": "#a",
    }


NESTED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "host": {"type": "string"},
        "auth": {
            "type": "object",
            "properties": {"user": {"type": "string"}, "token": {"type": "string", "secret": True}},
        },
        "servers": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "url": {"type": "string"},
                    "password": {"type": "string", "format": "password"},
                },
            },
        },
        "headers": {
            "type": "object",
            "additionalProperties": {"type": "string", "writeOnly": True},
        },
        "keys": {"type": "array", "items": {"$ref": "#/$defs/key"}},
        "either": {"anyOf": [{"type": "string"}, {"properties": {"pin": {"writeOnly": True}}}]},
    },
    "$defs": {"key": {"type": "string", "writeOnly": True}},
}


def test_secrets_are_found_at_any_depth_of_a_standard_schema() -> None:
    shape = secret_shape(NESTED_SCHEMA)
    assert shape is not None and not shape.whole
    assert set(shape.properties) == {"auth", "servers", "headers", "keys", "either"}
    assert shape.properties["auth"].properties["token"].whole
    servers = shape.properties["servers"].items
    assert servers is not None and servers.properties["password"].whole
    assert shape.properties["headers"].child("Authorization") == SecretShape(whole=True)
    assert shape.properties["keys"].items == SecretShape(whole=True)
    assert shape.properties["either"].properties["pin"].whole
    # Only whole top-level values are listed by secret_keys.
    assert secret_keys(NESTED_SCHEMA) == set()


def test_a_schema_without_secrets_has_no_shape_and_a_recursive_one_ends() -> None:
    assert secret_shape(STANDARD_SCHEMA) is None
    looping = {"$defs": {"node": {"properties": {"next": {"$ref": "#/$defs/node"}}}}}
    assert secret_shape({**looping, "properties": {"n": {"$ref": "#/$defs/node"}}}) is None

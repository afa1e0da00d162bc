"""Plugin manifests: the seed's Slack manifest parses, and every problem is named by its path."""

import copy
from typing import Any

import pytest

from runtime.catalog.manifest import manifest_problems, parse_manifest
from runtime.core.errors import BadUserInput

# The seed's Plugin Manifest (seeds/000_995d5c3f351cd671.txt), as written there.
SLACK: dict[str, Any] = {
    "name": "streamspace-slack",
    "version": "1.0.0",
    "displayName": "Slack Notifications",
    "description": "Send real-time notifications to Slack channels",
    "author": "StreamSpace Team",
    "license": "MIT",
    "type": "extension",
    "category": "notifications",
    "tags": ["notifications", "slack", "integrations", "real-time"],
    "icon": "slack-icon.png",
    "configSchema": {
        "webhookUrl": {
            "type": "string",
            "title": "Webhook URL",
            "description": "Slack incoming webhook URL",
            "required": True,
            "format": "uri",
        },
        "channel": {
            "type": "string",
            "title": "Channel",
            "description": "Default Slack channel (e.g., #general)",
            "default": "#general",
        },
        "username": {
            "type": "string",
            "title": "Bot Username",
            "description": "Display name for bot messages",
            "default": "StreamSpace Bot",
        },
        "iconEmoji": {
            "type": "string",
            "title": "Icon Emoji",
            "description": "Emoji to use as bot icon (e.g., :robot:)",
            "default": ":computer:",
        },
        "notifyOnSessionCreated": {
            "type": "boolean",
            "title": "Notify on Session Created",
            "default": True,
        },
        "notifyOnSessionHibernated": {
            "type": "boolean",
            "title": "Notify on Session Hibernated",
            "default": False,
        },
        "notifyOnUserCreated": {"type": "boolean", "title": "Notify on New User", "default": True},
        "includeDetails": {
            "type": "boolean",
            "title": "Include Resource Details",
            "description": "Show CPU/memory in session notifications",
            "default": False,
        },
        "rateLimit": {
            "type": "integer",
            "title": "Rate Limit",
            "description": "Maximum messages per hour",
            "default": 20,
            "minimum": 1,
            "maximum": 100,
        },
    },
    "defaultConfig": {
        "channel": "#general",
        "username": "StreamSpace Bot",
        "iconEmoji": ":computer:",
        "notifyOnSessionCreated": True,
        "notifyOnSessionHibernated": False,
        "notifyOnUserCreated": True,
        "includeDetails": False,
        "rateLimit": 20,
    },
    "permissions": ["sessions:read", "users:read"],
}


def slack(**changes: Any) -> dict[str, Any]:
    manifest = copy.deepcopy(SLACK)
    manifest.update(changes)
    return manifest


def problem_paths(data: Any) -> list[str]:
    return sorted(problem.path for problem in manifest_problems(data))


def test_the_seed_slack_manifest_parses() -> None:
    manifest = parse_manifest(SLACK)
    assert (manifest.name, manifest.version) == ("streamspace-slack", "1.0.0")
    assert manifest.display_name == "Slack Notifications"
    assert manifest.plugin_type == "extension"
    assert manifest.permissions == ["sessions:read", "users:read"]
    assert manifest.config_schema["required"] == ["webhookUrl"]
    assert manifest.default_config["rateLimit"] == 20
    assert manifest.raw == SLACK


def test_a_minimal_manifest_gets_defaults() -> None:
    manifest = parse_manifest({"name": "streamspace-echo", "version": "0.1.0"})
    assert manifest.display_name == "streamspace-echo"
    assert manifest.plugin_type == "extension"
    assert manifest.category == "other"
    assert manifest.config_schema == {"type": "object", "properties": {}}


@pytest.mark.parametrize(
    "plugin_type", ["extension", "webhook", "integration", "api", "ui", "theme"]
)
def test_every_documented_plugin_type_is_accepted(plugin_type: str) -> None:
    assert parse_manifest(slack(type=plugin_type)).plugin_type == plugin_type


def test_missing_name_and_version_are_both_reported() -> None:
    data = slack()
    del data["name"], data["version"]
    assert problem_paths(data) == ["name", "version"]


@pytest.mark.parametrize("version", ["1.0", "v1.0.0", "01.0.0", "1.0.0.0", "latest"])
def test_a_version_that_is_not_semver_is_reported(version: str) -> None:
    assert problem_paths(slack(version=version)) == ["version"]


def test_semver_prereleases_and_build_metadata_are_accepted() -> None:
    assert parse_manifest(slack(version="2.0.0-rc.1+build.7")).version == "2.0.0-rc.1+build.7"


def test_an_unknown_type_is_reported_with_the_allowed_ones() -> None:
    problems = manifest_problems(slack(type="daemon"))
    assert [p.path for p in problems] == ["type"]
    assert "webhook" in problems[0].message


def test_an_unknown_permission_is_reported_at_its_index() -> None:
    assert problem_paths(slack(permissions=["sessions:read", "root"])) == ["permissions.1"]


def test_an_invalid_config_schema_is_reported_where_the_author_wrote_it() -> None:
    schema = {**SLACK["configSchema"], "rateLimit": {"type": "number", "minimum": "one"}}
    assert problem_paths(slack(configSchema=schema)) == ["configSchema.rateLimit.minimum"]


def test_a_default_config_that_does_not_match_the_schema_is_reported() -> None:
    defaults = {**SLACK["defaultConfig"], "rateLimit": 500, "colour": "red"}
    assert problem_paths(slack(defaultConfig=defaults)) == [
        "defaultConfig.colour",
        "defaultConfig.rateLimit",
    ]


def test_every_problem_is_reported_at_once() -> None:
    data = slack(
        version="one",
        type="daemon",
        permissions=["root"],
        configSchema={"a": {"type": "strang"}},
        tags="slack",
        displayName=7,
    )
    del data["name"]
    with pytest.raises(BadUserInput) as raised:
        parse_manifest(data)
    assert sorted(p.path for p in raised.value.fields) == [
        "configSchema.a.type",
        "displayName",
        "name",
        "permissions.0",
        "tags",
        "type",
        "version",
    ]
    assert raised.value.as_extensions()["code"] == "BAD_USER_INPUT"
    assert "name: is required" in raised.value.message


def test_values_longer_than_the_catalog_stores_are_reported() -> None:
    data = slack(version="1.0.0-" + "a" * 60, tags=["x" * 101], category="c" * 101)
    assert problem_paths(data) == ["category", "tags.0", "version"]


def test_a_manifest_that_is_not_an_object_is_refused() -> None:
    assert problem_paths(["name"]) == [""]

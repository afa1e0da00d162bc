"""The event catalog as the server applies it: accepted types, origins, payload normalisation."""

import pytest

from runtime.core.errors import BadUserInput, Forbidden
from runtime.delivery.event_types import (
    KNOWN_TYPES,
    PLATFORM,
    SERVER,
    SERVER_TYPES,
    Origin,
    check_origin,
    check_type,
    normalise_payload,
)


@pytest.mark.parametrize("event_type", ["session.created", "quota.exceeded", "custom.backup_done"])
def test_known_and_custom_types_are_accepted(event_type: str) -> None:
    check_type(event_type)


def test_a_type_a_plugin_publishes_is_accepted() -> None:
    check_type("streamspace-workflows.step_done", lambda t: t.startswith("streamspace-workflows."))


@pytest.mark.parametrize("event_type", ["session.exploded", "Custom.X", "", "custom."])
def test_unknown_types_are_refused_naming_the_type(event_type: str) -> None:
    with pytest.raises(BadUserInput) as caught:
        check_type(event_type)
    assert caught.value.fields[0].path == "type"


def test_session_payloads_carry_every_spelling_of_user_and_template() -> None:
    payload = normalise_payload(
        "session.created", {"id": "s1", "user_id": "ann", "templateName": "ff"}
    )
    assert payload["user"] == payload["userId"] == payload["user_id"] == "ann"
    assert payload["template"] == payload["template_name"] == payload["templateName"] == "ff"
    assert payload["id"] == "s1"


def test_unknown_keys_are_kept_and_the_input_is_not_changed() -> None:
    original = {"userId": "bob", "extra": 1}
    payload = normalise_payload("session.stopped", original)
    assert payload["extra"] == 1
    assert original == {"userId": "bob", "extra": 1}


def test_user_payloads_carry_both_spellings_of_full_name() -> None:
    payload = normalise_payload("user.created", {"full_name": "Ann Lee"})
    assert payload["fullName"] == "Ann Lee"


def webhook_types(event_type: str) -> bool:
    return event_type.startswith("streamspace-webhook.")


def test_the_server_alone_reports_plugin_and_repository_events() -> None:
    expected = {
        "plugin.installed",
        "plugin.enabled",
        "plugin.disabled",
        "plugin.uninstalled",
        "plugin.updated",
        "plugin.error",
        "repository.sync.started",
        "repository.sync.completed",
        "repository.sync.failed",
    }
    assert expected == SERVER_TYPES
    for event_type in SERVER_TYPES:
        check_origin(event_type, SERVER)
        with pytest.raises(Forbidden, match="reported by the server itself"):
            check_origin(event_type, PLATFORM)


@pytest.mark.parametrize("event_type", [*sorted(KNOWN_TYPES - SERVER_TYPES), "custom.backup"])
def test_the_platform_emits_the_catalogs_other_types_and_custom_ones(event_type: str) -> None:
    check_origin(event_type, PLATFORM, webhook_types)


def test_the_platform_may_not_impersonate_a_plugin() -> None:
    with pytest.raises(Forbidden) as caught:
        check_origin("streamspace-webhook.fake", PLATFORM, webhook_types, "inputs.2.type")
    assert "belongs to the plugin streamspace-webhook" in caught.value.message
    assert caught.value.extensions["fields"][0]["path"] == "inputs.2.type"
    check_origin("streamspace-webhook.sent", Origin.of_plugin("streamspace-webhook"))


def test_an_unknown_type_from_the_platform_is_bad_input_naming_the_field() -> None:
    with pytest.raises(BadUserInput) as caught:
        check_origin("nobody.done", PLATFORM, webhook_types, "inputs.0.type")
    assert caught.value.fields[0].path == "inputs.0.type"


@pytest.mark.parametrize(
    ("plugin", "event_type", "error"),
    [
        ("streamspace-slack", "streamspace-webhook.fake", Forbidden),
        ("streamspace-slack", "session.created", Forbidden),
        ("streamspace-slack", "custom.x", Forbidden),
        ("session", "session.created", Forbidden),
        ("custom", "custom.x", Forbidden),
        ("streamspace-slack", "streamspace-slack.", Forbidden),
        ("streamspace-slack", "streamspace-slack.a.b", BadUserInput),
        ("streamspace-slack", "streamspace-slack." + "x" * 100, BadUserInput),
    ],
)
def test_a_plugin_publishes_only_its_own_names(
    plugin: str, event_type: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        check_origin(event_type, Origin.of_plugin(plugin), webhook_types)

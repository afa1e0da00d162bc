"""The event catalog: accepted types, hooks, permissions and payload normalisation."""

import pytest

from runtime.errors import BadUserInput
from runtime.events import (
    LIFECYCLE_TYPES,
    check_type,
    hook_for,
    normalise_payload,
    permission_for,
)


def test_the_eleven_lifecycle_types_each_reach_their_hook() -> None:
    assert len(LIFECYCLE_TYPES) == 11
    assert hook_for("session.woken") == "on_session_woken"
    assert hook_for("user.logout") == "on_user_logout"
    assert hook_for("session.heartbeat") is None


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


def test_session_and_user_events_need_their_read_permission() -> None:
    assert permission_for("session.stopped") == "sessions:read"
    assert permission_for("user.created") == "users:read"
    assert permission_for("custom.thing") is None


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

"""The events plugins receive: lifecycle types, their hooks and permissions, what a plugin sees."""

from __future__ import annotations

from runtime.delivery.event_types import KNOWN_TYPES, normalise_payload
from runtime.sdk.event_catalog import (
    EVENT_HOOKS,
    LIFECYCLE_TYPES,
    PERSONAL_FIELDS,
    SessionPayload,
    UserPayload,
    hook_for,
    permission_for,
    visible_payload,
)
from runtime.sdk.testing import SAMPLE_PAYLOADS


def test_the_eleven_lifecycle_types_each_reach_their_hook() -> None:
    assert len(LIFECYCLE_TYPES) == 11
    assert hook_for("session.woken") == "on_session_woken"
    assert hook_for("user.logout") == "on_user_logout"
    assert hook_for("session.heartbeat") is None
    assert tuple(hook_for(event_type) for event_type in LIFECYCLE_TYPES) == EVENT_HOOKS


def test_the_server_knows_every_lifecycle_type() -> None:
    assert set(LIFECYCLE_TYPES) <= KNOWN_TYPES


def test_session_and_user_events_need_their_read_permission() -> None:
    assert permission_for("session.stopped") == "sessions:read"
    assert permission_for("user.created") == "users:read"
    assert permission_for("custom.thing") is None


def test_personal_fields_are_hidden_from_a_plugin_without_users_read() -> None:
    payload = {"id": "s1", "user": "ann", "email": "ann@example.com", "ip": "192.0.2.1"}
    assert visible_payload(payload, ["sessions:read"]) == {"id": "s1", "user": "ann"}
    assert visible_payload(payload, ["sessions:read", "users:read"]) is payload


def test_the_payload_shapes_name_every_key_of_the_normalised_samples() -> None:
    shapes = {"session": SessionPayload, "user": UserPayload}
    for event_type, sample in SAMPLE_PAYLOADS.items():
        shape = shapes[event_type.split(".", 1)[0]]
        keys = set(normalise_payload(event_type, sample))
        assert keys <= set(shape.__annotations__), (event_type, keys - set(shape.__annotations__))
        assert shape.__required_keys__ == {"id"}


def test_user_payload_personal_fields_are_personal() -> None:
    assert {"email", "fullName", "full_name", "ip"} <= PERSONAL_FIELDS

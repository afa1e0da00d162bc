"""Secret values at any depth of a configuration: split out, merged back, masked, kept."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.catalog.config_schema import MASK, SecretShape, secret_shape
from runtime.catalog.secret_config import (
    ABSENT,
    MaskWithoutSecret,
    keep_secrets,
    mask_leaves,
    mask_secrets,
    merge_secrets,
    split_secrets,
)
from tests.runtime.catalog.test_config_schema import NESTED_SCHEMA

SHAPE = secret_shape(NESTED_SCHEMA)
CONFIG: dict[str, Any] = {
    "host": "mail.example",
    "auth": {"user": "ann", "token": "tok-1"},
    "servers": [{"url": "https://a.example", "password": "pw-a"}, {"url": "https://b.example"}],
    "headers": {"Authorization": "Bearer xyz", "X-Trace": "on"},
    "keys": ["k-1", "k-2"],
}


def test_the_public_part_holds_no_secret_and_the_secret_part_only_secrets() -> None:
    public, secret = split_secrets(CONFIG, SHAPE)
    assert public == {
        "host": "mail.example",
        "auth": {"user": "ann"},
        "servers": [{"url": "https://a.example"}, {"url": "https://b.example"}],
        "headers": {},
        "keys": [None, None],
    }
    assert secret == {
        "auth": {"token": "tok-1"},
        "servers": [{"password": "pw-a"}, None],
        "headers": {"Authorization": "Bearer xyz", "X-Trace": "on"},
        "keys": ["k-1", "k-2"],
    }


def test_merging_the_parts_gives_the_configuration_back() -> None:
    public, secret = split_secrets(CONFIG, SHAPE)
    assert merge_secrets(public, secret) == CONFIG


def test_a_configuration_without_secrets_has_an_empty_secret_part() -> None:
    assert split_secrets({"host": "x", "servers": [{"url": "u"}]}, SHAPE)[1] == {}
    assert split_secrets({"a": 1}, None) == ({"a": 1}, {})


def test_masking_hides_every_secret_that_is_set_at_any_depth() -> None:
    masked = mask_secrets({**CONFIG, "auth": {"user": "ann", "token": ""}}, SHAPE)
    assert masked == {
        "host": "mail.example",
        "auth": {"user": "ann", "token": ""},
        "servers": [{"url": "https://a.example", "password": MASK}, {"url": "https://b.example"}],
        "headers": {"Authorization": MASK, "X-Trace": MASK},
        "keys": [MASK, MASK],
    }


def test_a_stored_secret_part_is_masked_leaf_by_leaf() -> None:
    assert mask_leaves({"a": ["x", None, {"b": 3}], "c": ""}) == {
        "a": [MASK, None, {"b": MASK}],
        "c": "",
    }


def test_the_mask_or_a_secret_left_out_of_an_object_keeps_the_stored_value() -> None:
    auth = SHAPE.properties["auth"] if SHAPE else None
    assert keep_secrets({"user": "bob", "token": MASK}, CONFIG["auth"], auth, "auth") == {
        "user": "bob",
        "token": "tok-1",
    }
    assert keep_secrets({"user": "bob"}, CONFIG["auth"], auth, "auth") == {
        "user": "bob",
        "token": "tok-1",
    }
    assert keep_secrets({"token": "new"}, CONFIG["auth"], auth, "auth") == {"token": "new"}


def test_array_items_keep_their_secrets_by_position_while_the_length_is_the_same() -> None:
    servers = SHAPE.properties["servers"] if SHAPE else None
    given = [{"url": "https://a2.example", "password": MASK}, {"url": "https://b.example"}]
    assert keep_secrets(given, CONFIG["servers"], servers, "servers") == [
        {"url": "https://a2.example", "password": "pw-a"},
        {"url": "https://b.example"},
    ]
    # One item removed: position 0 would now name another server.
    with pytest.raises(MaskWithoutSecret) as raised:
        keep_secrets(
            [{"url": "https://b.example", "password": MASK}], CONFIG["servers"], servers, "servers"
        )
    assert raised.value.problem.path == "servers.0.password"
    assert keep_secrets([{"url": "https://b.example"}], CONFIG["servers"], servers, "servers") == [
        {"url": "https://b.example"}
    ]


def test_a_mask_where_nothing_is_stored_is_refused_with_its_path() -> None:
    with pytest.raises(MaskWithoutSecret) as raised:
        keep_secrets(MASK, ABSENT, SecretShape(whole=True), "token")
    assert raised.value.problem.path == "token"
    assert MASK in raised.value.problem.message

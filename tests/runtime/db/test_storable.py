"""What plugins produce is stored with each NUL replaced; what callers hand in is refused."""

from __future__ import annotations

import orjson

from runtime.db.storable import may_hold_nul, nul_path, storable_json, storable_text


def test_text_without_nul_is_the_same_object() -> None:
    text = "plain"
    assert storable_text(text) is text


def test_nul_in_text_becomes_the_replacement_character() -> None:
    assert storable_text("a\x00b\x00") == "a\ufffdb\ufffd"


def test_json_has_nul_replaced_in_keys_and_values_at_any_depth() -> None:
    value = {"k\x00": ["x\x00", 1, {"deep": "\x00"}], "n": None}
    assert storable_json(value) == {"k\ufffd": ["x\ufffd", 1, {"deep": "\ufffd"}], "n": None}


def test_json_without_nul_is_the_same_object() -> None:
    value = {"a": ["b", 1.5]}
    assert storable_json(value) is value
    assert storable_json(value, orjson.dumps(value)) is value


def test_an_escaped_backslash_before_u0000_is_text_not_nul() -> None:
    value = {"a": "\\u0000"}  # a backslash, then "u0000"
    encoded = orjson.dumps(value)
    assert may_hold_nul(encoded)  # the cheap test may say yes...
    assert nul_path(value) is None  # ...the walk says no
    assert storable_json(value, encoded) is value


def test_nul_path_names_the_first_nul() -> None:
    assert nul_path({"a": [1, {"b": "x\x00"}]}) == "a.1.b"
    assert nul_path({"a\x00b": 1}) == "a\x00b"
    assert nul_path(["ok", "\x00"]) == "1"
    assert nul_path({"a": 1}) is None

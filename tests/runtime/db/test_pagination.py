"""Keyset pagination: opaque cursors and page sizes."""

import base64

import pytest

from runtime.core.errors import BadUserInput
from runtime.db.pagination import MAX_PAGE_SIZE, SortKey, decode_cursor, encode_cursor, page_size


def test_a_cursor_decodes_to_the_values_it_was_made_of() -> None:
    values = [4.5, 12, "2026-01-01T00:00:00+00:00", None, True]
    assert decode_cursor(encode_cursor(values), len(values)) == values


def raw_cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not base64!",
        "éé",
        raw_cursor("not json"),
        raw_cursor('{"a": 1}'),
        raw_cursor("[1]"),
        raw_cursor("[1, 2, 3]"),
        raw_cursor('[{"a": 1}, 2]'),
        raw_cursor("[[1], 2]"),
    ],
)
def test_a_cursor_that_is_not_of_this_list_is_bad_input(cursor: str) -> None:
    with pytest.raises(BadUserInput, match="is not a cursor of this list"):
        decode_cursor(cursor, 2)


def test_page_size_defaults_and_accepts_its_bounds() -> None:
    assert page_size(None) == 20
    assert page_size(None, default=50) == 50
    assert page_size(1) == 1
    assert page_size(MAX_PAGE_SIZE) == MAX_PAGE_SIZE


@pytest.mark.parametrize("first", [0, -1, MAX_PAGE_SIZE + 1])
def test_page_size_outside_its_bounds_is_bad_input(first: int) -> None:
    with pytest.raises(BadUserInput, match=f"between 1 and {MAX_PAGE_SIZE}"):
        page_size(first)


def test_a_descending_sort_key_orders_with_a_minus() -> None:
    assert SortKey("install_count", descending=True).ordering == "-install_count"
    assert SortKey("name").ordering == "name"

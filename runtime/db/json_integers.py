"""Integers that JSON input may hold: those of 64 bits (signed), on every backend alike.

PostgreSQL's JSONB keeps a number of any length, but orjson (which writes and reads every
JSON column here) and SQLite's JSON hold 64 bits: orjson reads a longer integer as a float,
losing digits without a word, and refuses to write one. Input holding an integer outside
[-2^63, 2^63 - 1] is therefore refused, naming where, rather than stored differently by each
backend or changed on the way in.

Example:
    >>> wide_integer_path({"ok": 1, "ids": [7, 2**64]})
    'ids.1'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from runtime.core.errors import BadUserInput, FieldProblem

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# The shortest integer outside the range has 19 digits: text without such a run holds none.
_LONG_DIGIT_RUN = re.compile(rb"[0-9]{19}")
_LONG_DIGIT_RUN_TEXT = re.compile(r"[0-9]{19}")


def may_hold_wide_integer(text: bytes | str) -> bool:
    """Whether JSON or GraphQL text may spell an integer outside 64 bits (a cheap test)."""
    if isinstance(text, str):
        return _LONG_DIGIT_RUN_TEXT.search(text) is not None
    return _LONG_DIGIT_RUN.search(text) is not None


def is_wide(value: Any) -> bool:
    """Whether `value` is an integer (not a boolean) outside the signed 64-bit range."""
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and not INT64_MIN <= value <= INT64_MAX
    )


def wide_integer_path(value: Any) -> str | None:
    """The dotted path (keys, list indexes) of the first integer outside 64 bits; "" for
    `value` itself, None when it holds none. Iterative: input may nest deeper than Python's
    recursion limit."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if is_wide(item):
            return path
        if isinstance(item, Mapping):
            children = [(str(key), child) for key, child in item.items()]
        elif isinstance(item, list | tuple):
            children = [(str(index), child) for index, child in enumerate(item)]
        else:
            continue
        # Reversed onto the stack, so the first in document order is found first.
        for key, child in reversed(children):
            stack.append((f"{path}.{key}" if path else key, child))
    return None


def wide_integer_refused(field: str) -> BadUserInput:
    return BadUserInput(
        f"{field} is an integer outside the 64-bit range ({INT64_MIN} to {INT64_MAX}), which "
        "is not stored exactly on every backend: send it as a string",
        [FieldProblem(field, "an integer outside the 64-bit range")],
    )

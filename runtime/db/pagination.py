"""Keyset pagination: opaque cursors holding the sort key of the last row seen.

Keyset rather than offset pages, because rows inserted while a client pages (new catalog
entries, new events) must neither repeat nor skip a row.

Example:
    >>> cursor = encode_cursor([4.5, 12])
    >>> decode_cursor(cursor, 2)
    [4.5, 12]
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from tortoise.expressions import Q

from runtime.core.errors import BadUserInput

MAX_PAGE_SIZE = 100
_SCALARS = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class SortKey:
    field: str
    descending: bool = False

    @property
    def ordering(self) -> str:
        return f"-{self.field}" if self.descending else self.field


def encode_cursor(values: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(values))).decode()


def decode_cursor(cursor: str, length: int) -> list[Any]:
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, orjson.JSONDecodeError, ValueError):
        values = None
    # Only scalars are sort keys; anything else would reach the SQL filter and fail there.
    if (
        not isinstance(values, list)
        or len(values) != length
        or not all(isinstance(value, _SCALARS) for value in values)
    ):
        raise BadUserInput(f"after: {cursor!r} is not a cursor of this list")
    return values


def page_size(first: int | None, default: int = 20) -> int:
    size = default if first is None else first
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise BadUserInput(f"first must be between 1 and {MAX_PAGE_SIZE}, not {size}")
    return size


def after_q(keys: Sequence[SortKey], values: Sequence[Any]) -> Q:
    """Rows strictly after `values` in the order of `keys` (the last key must be unique)."""
    alternatives: list[Q] = []
    for index, key in enumerate(keys):
        equal = {keys[j].field: values[j] for j in range(index)}
        op = "lt" if key.descending else "gt"
        alternatives.append(Q(**equal, **{f"{key.field}__{op}": values[index]}))
    return Q(*alternatives, join_type=Q.OR)

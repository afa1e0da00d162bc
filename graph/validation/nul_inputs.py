"""Operations whose text or variables hold a NUL character are refused before they run.

PostgreSQL stores no NUL (U+0000) in text or JSON, and SQLite does: without this check the
same input would be kept on one backend and fail on the other as an internal error. Every
operation is checked with two substring searches; only one that may hold a NUL is walked to
name where it is.

Example:
    await refusal({"review": "a\\x00b"}, "mutation($review: String) { ... }")
    # GraphQLError('variables.review holds a NUL character (\\u0000)...', code BAD_USER_INPUT)
"""

from __future__ import annotations

from typing import Any

import orjson
from graphql import GraphQLError, StringValueNode, Visitor, visit

from graph.validation.documents import parsed
from runtime.core.errors import BadUserInput
from runtime.db.storable import NUL, may_hold_nul, nul_path, nul_refused

# How GraphQL's text may spell a NUL inside a string: the character itself, or its escape.
_IN_TEXT = (NUL, "\\u0000")


async def refusal(variables: dict[str, Any] | None, query: str | None) -> GraphQLError | None:
    """The error to answer with when the operation holds a NUL; None when it holds none."""
    if (
        query
        and any(spelling in query for spelling in _IN_TEXT)
        and await _literal_holds_nul(query)
    ):
        return _error(BadUserInput("a string in the operation holds a NUL character (\\u0000)"))
    if not variables:
        return None
    try:
        encoded = orjson.dumps(variables)
    except TypeError:
        return None  # not JSON: the variables' own coercion tells what is wrong
    if not may_hold_nul(encoded):
        return None
    where = nul_path(variables)
    if where is None:
        return None
    return _error(nul_refused(f"variables.{where}"))


class _Strings(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.nul = False

    def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
        self.nul = self.nul or NUL in node.value


async def _literal_holds_nul(query: str) -> bool:
    """Whether a string literal holds a NUL once its escapes are read (a backslash written
    as `\\\\` before "u0000" is text)."""
    try:
        # The operation's own parse: within its limits, cached for it, off the loop if long.
        document = await parsed(query)
    except GraphQLError:
        return False  # the parser answers for a document it cannot read
    strings = _Strings()
    visit(document, strings)
    return strings.nul


def _error(error: BadUserInput) -> GraphQLError:
    return GraphQLError(error.message, extensions=error.as_extensions())

"""Operations holding an integer beyond 64 bits are refused before they run, naming where.

Such an integer reaches a JSON argument (an event's payload, a plugin's configuration) exactly,
from a literal in the document (graphql-core reads it as a Python int) or from the variables
(`GraphQLApp.decode_json` keeps it exact rather than let orjson turn it into a float), and no
backend would store it alike (runtime/db/json_integers.py). Text without a run of 19 digits holds
none, so most operations cost one search of their text.

Example:
    await refusal({"input": {"payload": {"n": 2**70}}}, "mutation($input: ...) { ... }")
    # GraphQLError('variables.input.payload.n is an integer outside the 64-bit range ...')
"""

from __future__ import annotations

import json
import sys
from typing import Any

import orjson
from graphql import (
    BREAK,
    ArgumentNode,
    FieldNode,
    GraphQLError,
    IntValueNode,
    ListValueNode,
    Node,
    ObjectFieldNode,
    VariableDefinitionNode,
    Visitor,
    visit,
)

from graph.validation.documents import parsed
from runtime.core.errors import BadUserInput
from runtime.db.json_integers import (
    INT64_MAX,
    is_wide,
    may_hold_wide_integer,
    wide_integer_path,
    wide_integer_refused,
)


async def refusal(variables: dict[str, Any] | None, query: str | None) -> GraphQLError | None:
    """The error to answer with when the operation holds an integer beyond 64 bits."""
    if query and may_hold_wide_integer(query):
        where = await _literal_path(query)
        if where is not None:
            return _error(wide_integer_refused(where))
    if not variables:
        return None
    try:
        wide = may_hold_wide_integer(orjson.dumps(variables))
    except TypeError:
        wide = True  # orjson writes no integer beyond 64 bits (or the value is not JSON)
    if not wide:
        return None
    where = wide_integer_path(variables)
    return None if where is None else _error(wide_integer_refused(f"variables.{where}"))


def loads_exactly(data: str | bytes) -> object:
    """JSON as orjson reads it, except that integers beyond 64 bits stay exact (orjson reads
    them as floats, losing digits) so that `refusal` names them."""
    decoded = orjson.loads(data)
    if not may_hold_wide_integer(data):
        return decoded
    try:
        # orjson has checked the text already; the standard library keeps every integer exact.
        return json.loads(data, parse_int=_integer)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply to read exactly", str(data)[:64], 0) from None


def _integer(text: str) -> int:
    # Python converts a limited number of digits; an integer that long is beyond 64 bits.
    return int(text) if len(text) <= sys.get_int_max_str_digits() else INT64_MAX + 1


def _is_wide_literal(text: str) -> bool:
    return is_wide(_integer(text))


class _WideLiterals(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.path: str | None = None

    def enter_int_value(
        self, node: IntValueNode, key: Any, parent: Any, path: Any, ancestors: Any
    ) -> Any:
        if not _is_wide_literal(node.value):
            return None
        self.path = _where(node, list(path), [*ancestors, parent])
        return BREAK


def _where(node: Node, keys: list[Any], containers: list[Any]) -> str:
    """A literal's place as a dotted path: field (or alias), argument, object fields and list
    indexes; `$name` for a variable's default value. `containers[i]` holds the next step
    under `keys[i]`."""
    parts: list[str] = []
    for index, child in enumerate([*containers[1:], node]):
        if isinstance(child, FieldNode):
            parts.append((child.alias or child.name).value)
        elif isinstance(child, ArgumentNode | ObjectFieldNode):
            parts.append(child.name.value)
        elif isinstance(child, VariableDefinitionNode):
            parts.append(f"${child.variable.name.value}")
        elif index > 0 and isinstance(containers[index - 1], ListValueNode):
            parts.append(str(keys[index]))
    return ".".join(parts)


async def _literal_path(query: str) -> str | None:
    try:
        # The operation's own parse: within its limits, cached for it, off the loop if long.
        document = await parsed(query)
    except GraphQLError:
        return None  # the parser answers for a document it cannot read
    literals = _WideLiterals()
    visit(document, literals)
    return literals.path


def _error(error: BadUserInput) -> GraphQLError:
    return GraphQLError(error.message, extensions=error.as_extensions())

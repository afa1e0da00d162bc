"""The SQL of a values query built once per shape, its values bound per request.

Building a catalog page's statement with the ORM's query builder costs more than running it
(a search sorted by rating over 10,000 entries: some 0.25 ms to build, 0.1 ms to run on
SQLite). What changes the SQL text (which filters apply, how many tags, whether a cursor is
given, the columns, the dialect) is the statement's shape; its values the caller binds, in the
order the query builder puts them.

The first request of a shape builds the query as always. Its parameters must equal the
caller's, value for value and type for type, or the shape is never cached (and a warning
logged): a caller binding in another order than the builder gets slower pages, never wrong
ones.

Example:
    rows = await PAGES.values(CatalogPlugin, shape, [True, "%slack%", 21], build_query)
"""

from __future__ import annotations

import logging
import types
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tortoise.models import Model
from tortoise.queryset import ValuesQuery

from runtime.db._inline_reads import read_rows

log = logging.getLogger(__name__)

Converter = Callable[[Any], Any]


@dataclass(frozen=True)
class Statement:
    """A built values query: its SQL text and how its rows' columns become Python values."""

    sql: str
    converters: tuple[tuple[str, Converter], ...]


class StatementCache:
    """Values queries' statements by (dialect, shape), the least recently used dropped first.

    Shapes come from clients' selections, so their number is bounded only by this cache.
    """

    def __init__(self, maxsize: int = 512) -> None:
        self._maxsize = maxsize
        # None: a shape whose parameters did not match the builder's; always built.
        self._statements: OrderedDict[Hashable, Statement | None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._statements)

    def clear(self) -> None:
        self._statements.clear()

    async def values(
        self,
        model: type[Model],
        shape: Hashable,
        parameters: Sequence[Any],
        build: Callable[[], ValuesQuery[Literal[False]]],
    ) -> list[dict[str, Any]]:
        """The rows of the query `build` makes, which must bind `parameters` in this order."""
        db = model._choose_db()
        key = (db.capabilities.dialect, shape)
        try:
            statement = self._statements[key]
            self._statements.move_to_end(key)
        except KeyError:
            query = build()
            query._choose_db_if_not_chosen()
            query._make_query()
            sql, built = query.query.get_parameterized_sql()
            statement = None
            if _same(built, parameters):
                statement = Statement(sql, _converters(query))
            else:
                log.warning(
                    "a %s statement binds %r where its caller gave %r; it is built each time",
                    model.__name__,
                    built,
                    list(parameters),
                )
            self._statements[key] = statement
            if len(self._statements) > self._maxsize:
                self._statements.popitem(last=False)
            if statement is None:
                return await query
            parameters = built
        if statement is None:
            return await build()
        rows = await read_rows(db, statement.sql, parameters)
        for row in rows:
            for column, convert in statement.converters:
                row[column] = convert(row[column])
        return rows


def _same(built: Sequence[Any], given: Sequence[Any]) -> bool:
    # 1 == True and 1 == 1.0: the types must match too, or SQLite would compare otherwise.
    return len(built) == len(given) and all(
        type(a) is type(b) and a == b for a, b in zip(built, given, strict=True)
    )


def _converters(query: ValuesQuery[Literal[False]]) -> tuple[tuple[str, Converter], ...]:
    """The columns ValuesQuery converts after reading, and how (as its `_execute` does)."""
    columns = (
        (alias, query.resolve_to_python_value(query.model, field))
        for alias, field in query._fields_for_select.items()
    )
    # ValuesQuery skips what resolves to a plain function: those are identities.
    return tuple(
        (alias, convert) for alias, convert in columns if not isinstance(convert, types.LambdaType)
    )

"""Multi-row statements the ORM does not offer: INSERT … RETURNING and UPDATE … FROM VALUES.

The hot paths write many rows at once: a batch of events and their deliveries, a batch of
delivery outcomes. The ORM's `bulk_create` gives no ids back and its updates go one row per
statement, so these build one statement per batch (chunked under the dialects' limit of bound
parameters) and turn the returned rows into model instances without reading them again.

Example:
    events = await insert_returning(EventRow, [{"type": "session.created", ...}], connection)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.connection import get_connection
from tortoise.models import Model

M = TypeVar("M", bound=Model)
T = TypeVar("T")

# Both SQLite (≥ 3.32) and PostgreSQL take 32,766 bound parameters per statement at least.
MAX_PARAMETERS = 30_000


def dialect_of(connection: BaseDBAsyncClient | None = None) -> str:
    """'postgres' or 'sqlite'."""
    return (connection or get_connection("default")).capabilities.dialect


def marker(dialect: str, index: int) -> str:
    """The `index`-th (from 1) bound parameter in this dialect's syntax: numbered in both, so
    one parameter may appear several times in a statement."""
    return f"${index}" if dialect == "postgres" else f"?{index}"


def db_value(model: type[Model], field: str, value: Any) -> Any:
    """A Python value as the ORM binds it for `model.field` (JSON as text, SQLite times as text)."""
    return model._meta.fields_map[field].to_db_value(value, model)


def chunks(rows: Sequence[T], columns: int) -> list[Sequence[T]]:
    """`rows` cut into runs that each bind fewer than MAX_PARAMETERS values."""
    size = max(1, MAX_PARAMETERS // max(1, columns))
    return [rows[start : start + size] for start in range(0, len(rows), size)]


def bound_values(
    model: type[Model], columns: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> list[Any]:
    """The rows' values as the ORM binds them, row after row.

    A batch repeats most values (one timestamp, one plugin name, one hook), so each column
    converts a value once and reuses it; unhashable values (JSON) are converted each time.
    Columns are converted one after the other, then interleaved row by row.
    """
    converted = [
        _converted(model, model._meta.fields_map[column], [row[column] for row in rows])
        for column in columns
    ]
    return [value for row in zip(*converted, strict=True) for value in row]


_NOTHING = object()


def _converted(model: type[Model], field: Any, values: list[Any]) -> list[Any]:
    convert = field.to_db_value
    memo: dict[tuple[type, Any], Any] = {}
    out: list[Any] = []
    last, last_converted = _NOTHING, None
    for value in values:
        if value is last:  # the same object as the row before: the usual case
            out.append(last_converted)
            continue
        try:
            # 1 == True == 1.0: the type is part of the key.
            key = (type(value), value)
            done = memo[key]
        except KeyError:
            done = memo[key] = convert(value, model)
        except TypeError:
            done = convert(value, model)
        out.append(done)
        last, last_converted = value, done
    return out


def values_clause(dialect: str, rows: int, columns: int) -> str:
    """The markers of a multi-row VALUES list of `rows` rows of `columns` values."""
    if dialect == "postgres":
        tuples = (
            "(" + ", ".join(f"${row * columns + column + 1}" for column in range(columns)) + ")"
            for row in range(rows)
        )
        return ", ".join(tuples)
    return ", ".join(["(" + ", ".join("?" * columns) + ")"] * rows)


async def _insert(
    model: type[Model],
    rows: Sequence[Mapping[str, Any]],
    returning: str,
    connection: BaseDBAsyncClient | None,
) -> list[dict[str, Any]]:
    if not rows:
        return []
    client = connection or get_connection("default")
    dialect = dialect_of(client)
    columns = list(rows[0])
    records: list[dict[str, Any]] = []
    for chunk in chunks(rows, len(columns)):
        sql = (
            f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) "
            f"VALUES {values_clause(dialect, len(chunk), len(columns))} RETURNING {returning}"
        )
        records.extend(await client.execute_query_dict(sql, bound_values(model, columns, chunk)))
    return records


async def insert_returning(
    model: type[M],
    rows: Sequence[Mapping[str, Any]],
    connection: BaseDBAsyncClient | None = None,
) -> list[M]:
    """Insert `rows` (dicts of column values, the same keys in each) and return the stored
    instances in id order, which is the order of `rows`: ids are drawn row by row."""
    records = await _insert(model, rows, "*", connection)
    stored = [model._init_from_db(**record) for record in records]
    stored.sort(key=lambda instance: instance.pk)
    return stored


async def insert_ids(
    model: type[Model],
    rows: Sequence[Mapping[str, Any]],
    connection: BaseDBAsyncClient | None = None,
) -> list[int]:
    """Insert `rows` and return their ids in the order of `rows`, reading nothing else back
    (for callers that hold every other value already)."""
    records = await _insert(model, rows, "id", connection)
    return sorted(int(record["id"]) for record in records)

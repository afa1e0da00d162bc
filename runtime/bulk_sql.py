"""Multi-row statements the ORM does not offer: INSERT … RETURNING and UPDATE … FROM VALUES.

The hot paths write many rows at once: a batch of events and their deliveries, a batch of
delivery outcomes. The ORM's `bulk_create` gives no ids back and its updates go one row per
statement, so these build one statement per batch (chunked under the dialects' limit of bound
parameters) and turn the returned rows into model instances without reading them again.

Example:
    events = await insert_returning(Event, [{"type": "session.created", ...}], connection)
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


async def insert_returning(
    model: type[M],
    rows: Sequence[Mapping[str, Any]],
    connection: BaseDBAsyncClient | None = None,
) -> list[M]:
    """Insert `rows` (dicts of column values, the same keys in each) and return the stored
    instances in id order, which is the order of `rows`: ids are drawn row by row."""
    if not rows:
        return []
    client = connection or get_connection("default")
    dialect = dialect_of(client)
    columns = list(rows[0])
    stored: list[M] = []
    for chunk in chunks(rows, len(columns)):
        values: list[Any] = []
        tuples = []
        for row in chunk:
            places = []
            for column in columns:
                values.append(db_value(model, column, row[column]))
                places.append(marker(dialect, len(values)))
            tuples.append(f"({', '.join(places)})")
        sql = (
            f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) "
            f"VALUES {', '.join(tuples)} RETURNING *"
        )
        for record in await client.execute_query_dict(sql, values):
            stored.append(model._init_from_db(**record))
    stored.sort(key=lambda instance: instance.pk)
    return stored

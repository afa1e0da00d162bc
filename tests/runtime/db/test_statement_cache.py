"""StatementCache: a values query's SQL built once per (dialect, shape), values bound per call."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Literal

import pytest
from tortoise.connection import get_connection
from tortoise.queryset import ValuesQuery

from models import CatalogPlugin, Repository
from runtime.db._statement_cache import StatementCache
from tests.conftest import Database, QueryCounter


async def add(name: str, install_count: int) -> CatalogPlugin:
    repository = await Repository.get(name="builtin")
    return await CatalogPlugin.create(
        repository_id=repository.id,
        name=name,
        version="1.0.0",
        manifest={"name": name},
        tags=[name, "x"],
        install_count=install_count,
    )


def by_count(minimum: int) -> ValuesQuery[Literal[False]]:
    return (
        CatalogPlugin.filter(install_count__gte=minimum)
        .order_by("id")
        .values("id", "name", "tags", "manifest", "created_at", "available")
    )


async def test_later_calls_of_a_shape_bind_their_own_values(
    db: Database, sql_counter: QueryCounter
) -> None:
    for index in range(4):
        await add(f"p{index}", index * 10)
    cache = StatementCache()
    for minimum in (0, 15, 25, 99):
        before = sql_counter.count
        rows = await cache.values(
            CatalogPlugin, "by-count", [minimum], lambda m=minimum: by_count(m)
        )
        assert sql_counter.count == before + 1
        # Converted as the ORM converts them: JSON decoded, times and booleans typed.
        assert rows == await by_count(minimum)
        assert all(isinstance(row["created_at"], datetime) for row in rows)
        assert all(row["available"] is True and isinstance(row["tags"], list) for row in rows)
    assert len(cache) == 1
    assert [row["name"] for row in rows] == []


async def test_parameters_unlike_the_builders_are_never_cached(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    await add("p0", 0)
    await add("p1", 10)
    cache = StatementCache()
    built = 0

    def build() -> ValuesQuery[Literal[False]]:
        nonlocal built
        built += 1
        return by_count(5)

    with caplog.at_level(logging.WARNING, logger="runtime.db._statement_cache"):
        for _ in range(3):
            # The builder binds the int 5; a caller handing the float 5.0 (or True for 1) would
            # bind another value type than the builder, so it is not trusted.
            rows = await cache.values(CatalogPlugin, "wrong", [5.0], build)
            assert [row["name"] for row in rows] == ["p1"]
    assert built == 3
    assert "binds [5]" in caplog.text


async def test_the_least_recently_used_shape_goes_first(db: Database) -> None:
    await add("p0", 0)
    cache = StatementCache(maxsize=2)
    for shape in ("a", "b", "a", "c"):
        await cache.values(CatalogPlugin, shape, [0], lambda: by_count(0))
    built: list[str] = []

    def build(shape: str) -> ValuesQuery[Literal[False]]:
        built.append(shape)
        return by_count(0)

    for shape in ("a", "c", "b"):
        await cache.values(CatalogPlugin, shape, [0], lambda shape=shape: build(shape))
    assert built == ["b"]
    assert len(cache) == 2


async def test_shapes_are_kept_apart_by_dialect(db: Database) -> None:
    await add("p0", 0)
    cache = StatementCache()
    await cache.values(CatalogPlugin, "s", [0], lambda: by_count(0))
    dialect = get_connection("default").capabilities.dialect
    other = "sqlite" if dialect == "postgres" else "postgres"
    (key,) = cache._statements
    assert key == (dialect, "s")
    assert (other, "s") not in cache._statements


async def test_time_columns_keep_their_zone(db: Database) -> None:
    plugin = await add("p0", 0)
    moment = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    await CatalogPlugin.filter(id=plugin.id).update(created_at=moment)
    cache = StatementCache()
    for _ in range(2):
        (row,) = await cache.values(CatalogPlugin, "t", [0], lambda: by_count(0))
        assert row["created_at"] == moment

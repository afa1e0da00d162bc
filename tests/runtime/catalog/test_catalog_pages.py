"""Catalog pages read from statements built once per shape.

`CatalogSearch.page` builds a page's query with the ORM; `fetch_page` runs the statement the
first page of that shape built, binding `page_parameters`. Every filter, sort and cursor
combination must bind exactly what the built query binds, in its order, and return its rows.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from models import CatalogPlugin, CatalogTag, InstalledPlugin, PluginStats, Repository
from runtime.catalog.browse import PAGE_STATEMENTS, CatalogSearch, CatalogSort, search_text
from runtime.db.pagination import encode_cursor
from tests.conftest import Database, QueryCounter

# A cursor of each sort, whatever rows exist: values of the sort keys' types.
CURSORS = {
    CatalogSort.POPULAR: encode_cursor([10, 3]),
    CatalogSort.RATING: encode_cursor([4.5, 2, 3]),
    CatalogSort.NEWEST: encode_cursor(["2026-01-02T00:00:00+00:00", 3]),
    CatalogSort.NAME: encode_cursor(["b-plugin", 3]),
}
PAGE_COLUMNS = ("id", "name", "created_at", "tags", "manifest")


def combinations(repository_id: int) -> Iterator[CatalogSearch]:
    """Every filter with each of its kinds of value (unset, empty, set), and every sort."""
    for values in itertools.product(
        (None, True, False),  # available
        (None, "", "monitoring"),  # category
        (None, "integration"),  # plugin_type
        (None, repository_id),  # repository_id
        (None, "  ", " Slack_%\\ "),  # search: blank, or with LIKE's wildcards and escape
        ((), ("slack",), ("notifications", "slack", "notifications")),  # tags
        (None, True, False),  # installed
        tuple(CatalogSort),
    ):
        available, category, plugin_type, repository, search, tags, installed, sort = values
        yield CatalogSearch(
            category=category,
            plugin_type=plugin_type,
            search=search,
            tags=tags,
            repository_id=repository,
            installed=installed,
            available=available,
            sort=sort,
        )


def built(
    query: CatalogSearch,
    first: int,
    after: str | None,
    columns: tuple[str, ...] = PAGE_COLUMNS,
    related: tuple[str, ...] = (),
) -> tuple[str, list[Any]]:
    page = query.page(first, after, columns, related)
    page._choose_db_if_not_chosen()
    page._make_query()
    sql, parameters = page.query.get_parameterized_sql()
    return sql, parameters


def typed(values: list[Any]) -> list[tuple[type, Any]]:
    return [(type(value), value) for value in values]


@pytest.fixture(autouse=True)
def fresh_statements() -> Iterator[None]:
    PAGE_STATEMENTS.clear()
    yield
    PAGE_STATEMENTS.clear()


async def test_every_combination_binds_what_the_built_query_binds(db: Database) -> None:
    repository = await Repository.get(name="builtin")
    texts: dict[Any, str] = {}
    for query in combinations(repository.id):
        for after in (None, "", CURSORS[query.sort]):
            sql, parameters = built(query, 5, after)
            assert typed(query.page_parameters(5, after)) == typed(parameters), (query, after)
            # The shape decides the text: one shape, one statement.
            shape = query.page_shape(after, PAGE_COLUMNS, ())
            assert texts.setdefault(shape, sql) == sql, (query, after)


@pytest.mark.parametrize(
    ("columns", "related"),
    [
        (("id",), ()),
        (("id", "name"), ("repository",)),
        (("id", "avg_rating", "name"), ("repository", "stats")),
        (("id",), ("stats",)),
    ],
)
async def test_columns_and_joins_are_part_of_the_shape(
    db: Database, columns: tuple[str, ...], related: tuple[str, ...]
) -> None:
    query = CatalogSearch(search="slack", sort=CatalogSort.RATING)
    after = CURSORS[CatalogSort.RATING]
    _, parameters = built(query, 20, after, columns, related)
    assert typed(query.page_parameters(20, after)) == typed(parameters)
    others = {
        query.page_shape(after, other_columns, other_related)
        for other_columns in (("id",), ("id", "name"), ("id", "avg_rating", "name"))
        for other_related in ((), ("repository",), ("stats",), ("repository", "stats"))
        if (other_columns, other_related) != (columns, related)
    }
    assert query.page_shape(after, columns, related) not in others


@pytest.fixture
async def entries(db: Database) -> AsyncIterator[int]:
    """A small catalog with ties on every sort key, in two repositories; the builtin one's id."""
    builtin = await Repository.get(name="builtin")
    other = await Repository.create(name="other", url="file:///nowhere/index.json", type="index")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for index in range(12):
        name = f"{'abc'[index % 3]}-plugin-{index}"
        tags = [["notifications", "slack"], ["slack"], ["notifications"], []][index % 4]
        description = "Slack_%\\ bridge" if index % 5 == 0 else "posts somewhere"
        plugin = await CatalogPlugin.create(
            repository_id=(builtin if index % 3 else other).id,
            name=name,
            version="1.0.0",
            display_name=name.title(),
            description=description,
            category=["monitoring", "notifications"][index % 2],
            plugin_type=["integration", "extension", "integration"][index % 3],
            manifest={"name": name, "version": "1.0.0"},
            tags=tags,
            install_count=[10, 3, 10, 0][index % 4],
            avg_rating=[4.5, 2.0, 4.5][index % 3],
            rating_count=[2, 2, 7][index % 3],
            available=index % 6 != 5,
            search_text=search_text(name, name.title(), description, tags),
        )
        await CatalogPlugin.filter(id=plugin.id).update(
            created_at=start + timedelta(days=index % 3)
        )
        await CatalogTag.bulk_create([CatalogTag(plugin_id=plugin.id, tag=t) for t in tags])
        if index % 2:
            await PluginStats.create(plugin_id=plugin.id, view_count=index)
        if index % 4 == 1:
            await InstalledPlugin.create(catalog_plugin_id=plugin.id, name=name, version="1.0.0")
    yield builtin.id


async def test_a_cached_statement_returns_the_rows_of_the_built_query(
    entries: int, sql_counter: QueryCounter
) -> None:
    columns = ("id", "avg_rating", "created_at", "install_count", "name", "tags")
    related = ("repository", "stats")
    pages = 0
    for index, query in enumerate(combinations(entries)):
        if index % 7:  # a spread of the combinations: every one of them is too slow to run
            continue
        for after in (None, CURSORS[query.sort]):
            expected = await query.page(3, after, columns, related)
            first = await query.fetch_page(3, after, columns, related)  # builds the statement
            before = sql_counter.count
            again = await query.fetch_page(3, after, columns, related)  # reads from it
            assert sql_counter.count == before + 1
            assert first == expected, (query, after)
            assert again == expected, (query, after)
            pages += bool(expected)
    assert pages > 50  # most combinations exercised hold rows


async def test_one_statement_serves_every_value_of_its_shape(entries: int) -> None:
    for search, sort in itertools.product(("slack", "bridge", "nothing"), tuple(CatalogSort)):
        query = CatalogSearch(search=search, sort=sort, tags=("slack",))
        for after in (None, CURSORS[sort]):
            rows = await query.fetch_page(2, after, ("id", "name"))
            assert rows == await query.page(2, after, ("id", "name")), (search, sort, after)
    assert len(PAGE_STATEMENTS) == len(CatalogSort) * 2


async def test_a_forged_cursor_is_refused_before_any_statement(entries: int) -> None:
    from runtime.core.errors import BadUserInput

    query = CatalogSearch(sort=CatalogSort.NEWEST)
    with pytest.raises(BadUserInput):
        await query.fetch_page(2, encode_cursor(["yesterday", 1]), ("id",))
    assert len(PAGE_STATEMENTS) == 0

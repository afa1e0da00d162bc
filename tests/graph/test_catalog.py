"""The catalog query: filters, sort orders, keyset pages, batching and view counting."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from graph.context import Services
from models import CatalogPlugin, InstalledPlugin, PluginStats, Repository
from runtime.core.auth import Role
from tests.conftest import QueryCounter
from tests.graph.conftest import Catalog, Execute

NAMES = """
query($filter: CatalogFilter, $sort: CatalogSort, $first: Int, $after: String) {
  catalog(filter: $filter, sort: $sort, first: $first, after: $after) {
    totalCount edges { cursor node { name } } pageInfo { hasNextPage endCursor } } }"""


async def names(gql: Execute, **variables: Any) -> list[str]:
    data = (await gql(NAMES, variables, role=Role.USER)).ok()
    return [edge["node"]["name"] for edge in data["catalog"]["edges"]]


@pytest.fixture
async def catalog(make_plugin: Catalog) -> None:
    await make_plugin(
        "streamspace-slack",
        display_name="Slack Notifications",
        description="Send real-time notifications to Slack channels",
        tags=["notifications", "slack", "real-time"],
        install_count=30,
        avg_rating=4.5,
        rating_count=2,
    )
    await make_plugin(
        "streamspace-teams",
        display_name="Microsoft Teams",
        description="Post to a channel",
        tags=["notifications", "microsoft"],
        install_count=10,
        avg_rating=4.5,
        rating_count=8,
    )
    await make_plugin(
        "streamspace-datadog",
        display_name="Datadog Export",
        description="Metrics to DATADOG",
        category="monitoring",
        plugin_type="integration",
        tags=["metrics"],
        install_count=20,
        avg_rating=3.0,
        rating_count=1,
    )
    await make_plugin("streamspace-old", category="monitoring", available=False)


async def test_filter_by_category(gql: Execute, catalog: None) -> None:
    assert await names(gql, filter={"category": "monitoring"}) == ["streamspace-datadog"]


async def test_filter_by_type(gql: Execute, catalog: None) -> None:
    assert await names(gql, filter={"type": "integration"}) == ["streamspace-datadog"]


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("TEAMS", ["streamspace-teams"]),  # name, any case
        ("slack notif", ["streamspace-slack"]),  # display name
        ("datadog", ["streamspace-datadog"]),  # description written in capitals
        ("microsoft", ["streamspace-teams"]),  # display name and tag
        ("real-time", ["streamspace-slack"]),  # tag only
        ("nothing-like-this", []),
    ],
)
async def test_search_matches_name_display_name_description_and_tags_in_any_case(
    gql: Execute, catalog: None, search: str, expected: list[str]
) -> None:
    assert await names(gql, filter={"search": search}) == expected


async def test_search_wildcards_are_literal(gql: Execute, catalog: None) -> None:
    assert await names(gql, filter={"search": "%"}) == []
    assert await names(gql, filter={"search": "_"}) == []


async def test_tags_keep_entries_carrying_all_given_tags(gql: Execute, catalog: None) -> None:
    assert await names(gql, filter={"tags": ["notifications"]}) == [
        "streamspace-slack",
        "streamspace-teams",
    ]
    assert await names(gql, filter={"tags": ["notifications", "slack"]}) == ["streamspace-slack"]
    assert await names(gql, filter={"tags": ["slack", "metrics"]}) == []


async def test_filter_by_repository(gql: Execute, catalog: None, make_plugin: Catalog) -> None:
    other = await Repository.create(name="community", url="https://plugins.example/")
    await make_plugin("community-echo", repository=other)
    assert await names(gql, filter={"repositoryId": str(other.id)}) == ["community-echo"]


async def test_filter_by_installed(gql: Execute, catalog: None) -> None:
    data = (await gql('{ catalog(filter: {search: "teams"}) { edges { node { id } } } }')).ok()
    teams_id = data["catalog"]["edges"][0]["node"]["id"]
    await InstalledPlugin.create(
        catalog_plugin_id=int(teams_id), name="streamspace-teams", version="1.0.0"
    )
    assert await names(gql, filter={"installed": True}) == ["streamspace-teams"]
    assert await names(gql, filter={"installed": False}) == [
        "streamspace-slack",
        "streamspace-datadog",
    ]


async def test_available_defaults_to_offered_entries(gql: Execute, catalog: None) -> None:
    assert "streamspace-old" not in await names(gql)
    assert await names(gql, filter={"available": False}) == ["streamspace-old"]
    assert len(await names(gql, filter={"available": None})) == 4


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("POPULAR", ["streamspace-slack", "streamspace-datadog", "streamspace-teams"]),
        # Equal averages: more ratings first.
        ("RATING", ["streamspace-teams", "streamspace-slack", "streamspace-datadog"]),
        ("NAME", ["streamspace-datadog", "streamspace-slack", "streamspace-teams"]),
    ],
)
async def test_sort_orders(gql: Execute, catalog: None, sort: str, expected: list[str]) -> None:
    assert await names(gql, sort=sort) == expected


async def test_newest_first(gql: Execute, make_plugin: Catalog) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for offset, name in [(2, "middle"), (5, "newest"), (0, "oldest")]:
        await make_plugin(name, created_at=start + timedelta(days=offset))
    assert await names(gql, sort="NEWEST") == ["newest", "middle", "oldest"]


@pytest.mark.parametrize("sort", ["POPULAR", "RATING", "NEWEST", "NAME"])
async def test_pages_of_two_walk_every_entry_exactly_once(
    gql: Execute, make_plugin: Catalog, sort: str
) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for index in range(7):
        # Ties on every sort key but the id, so the cursor's tie-breaker is exercised.
        await make_plugin(
            f"plugin-{index}",
            install_count=index % 2,
            avg_rating=float(index % 3),
            created_at=start + timedelta(hours=index % 2),
        )
    seen: list[str] = []
    after = None
    while True:
        data = (await gql(NAMES, {"sort": sort, "first": 2, "after": after}, role=Role.USER)).ok()
        page = data["catalog"]
        assert page["totalCount"] == 7
        assert len(page["edges"]) <= 2
        seen += [edge["node"]["name"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
        assert after == page["edges"][-1]["cursor"]
    assert sorted(seen) == [f"plugin-{index}" for index in range(7)]
    assert len(seen) == 7


def _cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


@pytest.mark.parametrize(
    ("sort", "after"),
    [
        ("POPULAR", "not a cursor"),
        ("POPULAR", _cursor(b"[1]")),  # wrong length
        ("POPULAR", _cursor(b'["x", 1]')),  # wrong value type
        ("NEWEST", _cursor(b'["yesterday", 1]')),  # not a timestamp
        ("NAME", _cursor(b"[[1], {}]")),
    ],
)
async def test_a_bad_cursor_is_bad_user_input(
    gql: Execute, catalog: None, sort: str, after: str
) -> None:
    result = await gql(NAMES, {"sort": sort, "after": after}, role=Role.USER)
    assert result.codes == ["BAD_USER_INPUT"]


@pytest.mark.parametrize("first", [0, -1, 101])
async def test_first_out_of_range_is_bad_user_input(
    gql: Execute, catalog: None, first: int
) -> None:
    result = await gql(NAMES, {"first": first}, role=Role.USER)
    assert result.codes == ["BAD_USER_INPUT"]
    assert "first" in result.errors[0]["message"]


# What a catalog screen shows of each entry; every relation is batched or joined.
PAGE = """query($first: Int) { catalog(first: $first) { totalCount edges { node {
  id name viewCount myRating { rating }
  repository { id name } versions { version } installed { id enabled } } } } }"""


async def _statements_for_page(
    gql: Execute, make_plugin: Catalog, sql_counter: QueryCounter, size: int
) -> int:
    for index in range(size):
        plugin = await make_plugin(f"page-{size}-{index}", versions=("1.0.0", "1.1.0"))
        if index % 2:
            await InstalledPlugin.create(
                catalog_plugin_id=plugin.id, name=plugin.name, version="1.1.0"
            )
    before = sql_counter.count
    data = (await gql(PAGE, {"first": size}, role=Role.ADMIN)).ok()
    assert len(data["catalog"]["edges"]) == size
    assert all(len(edge["node"]["versions"]) == 2 for edge in data["catalog"]["edges"])
    return sql_counter.count - before


async def test_a_page_costs_the_same_statements_whatever_its_size(
    gql: Execute, make_plugin: Catalog, sql_counter: QueryCounter, db: Any
) -> None:
    small = await _statements_for_page(gql, make_plugin, sql_counter, 2)
    await InstalledPlugin.all().delete()
    await CatalogPlugin.all().delete()
    large = await _statements_for_page(gql, make_plugin, sql_counter, 10)
    print(f"SQL statements per catalog page ({db.backend}): N=2 -> {small}, N=10 -> {large}")
    assert small == large
    assert large <= 5


@pytest.mark.parametrize(
    ("selection", "joined"),
    [
        ("id name avgRating", set()),
        ("id repository { name }", {"repositories"}),
        ("id viewCount", {"plugin_stats"}),
        ("...F", {"repositories", "plugin_stats"}),
    ],
    ids=["scalars", "repository", "view-count", "fragment"],
)
async def test_a_page_joins_only_the_relations_it_shows(
    gql: Execute,
    make_plugin: Catalog,
    sql_counter: QueryCounter,
    selection: str,
    joined: set[str],
) -> None:
    await make_plugin("streamspace-slack")
    query = (
        f"{{ catalog {{ edges {{ node {{ {selection} }} }} }} }} "
        "fragment F on CatalogPlugin { repository { id } viewCount }"
        if selection == "...F"
        else f"{{ catalog {{ edges {{ node {{ {selection} }} }} }} }}"
    )
    sql_counter.statements.clear()
    data = (await gql(query, role=Role.USER)).ok()
    assert len(data["catalog"]["edges"]) == 1
    (page,) = [sql for sql in sql_counter.statements if "ORDER BY" in sql]
    assert {table for table in ("repositories", "plugin_stats") if f'JOIN "{table}"' in page} == (
        joined
    )
    assert len(sql_counter.statements) == 1


DETAIL = "query($id: ID!) { catalogPlugin(id: $id) { id name viewCount } }"


async def test_catalog_plugin_counts_a_view(
    gql: Execute, make_plugin: Catalog, services: Services
) -> None:
    plugin = await make_plugin("streamspace-slack")
    first = (await gql(DETAIL, {"id": str(plugin.id)}, role=Role.USER)).ok()
    assert first["catalogPlugin"]["viewCount"] == 0
    await gql(DETAIL, {"id": str(plugin.id)}, role=Role.USER)
    await services.views.flush()
    again = (await gql(DETAIL, {"id": str(plugin.id)}, role=Role.USER)).ok()
    assert again["catalogPlugin"]["viewCount"] == 2


async def test_a_failing_view_count_never_fails_the_read(
    gql: Execute, make_plugin: Catalog, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin = await make_plugin("streamspace-slack")

    def broken(plugin_id: int) -> None:
        raise RuntimeError("view counter is down")

    monkeypatch.setattr(services.views, "count", broken)
    result = await gql(DETAIL, {"id": str(plugin.id)}, role=Role.USER)
    assert result.ok()["catalogPlugin"]["name"] == "streamspace-slack"


async def test_a_failing_view_write_keeps_the_counts_for_later(
    gql: Execute, make_plugin: Catalog, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin = await make_plugin("streamspace-slack")
    assert (await gql(DETAIL, {"id": str(plugin.id)}, role=Role.USER)).ok()

    def broken_filter(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("database went away")

    with monkeypatch.context() as patch:
        patch.setattr(PluginStats, "filter", broken_filter)
        with pytest.raises(ConnectionError):
            await services.views.flush()
    await services.views.flush()
    data = (await gql(DETAIL, {"id": str(plugin.id)}, role=Role.USER)).ok()
    assert data["catalogPlugin"]["viewCount"] == 1


@pytest.mark.parametrize("plugin_id", ["9999"])
async def test_an_unknown_catalog_plugin_is_not_found(gql: Execute, plugin_id: str) -> None:
    result = await gql(DETAIL, {"id": plugin_id}, role=Role.USER)
    assert result.codes == ["NOT_FOUND"]


async def test_a_malformed_id_is_bad_user_input(gql: Execute) -> None:
    result = await gql(DETAIL, {"id": "not-a-number"}, role=Role.USER)
    assert result.codes == ["BAD_USER_INPUT"]


async def test_a_malformed_repository_id_filter_is_bad_user_input(gql: Execute) -> None:
    result = await gql(NAMES, {"filter": {"repositoryId": "builtin"}}, role=Role.USER)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.errors[0]["extensions"]["fields"][0]["path"] == "filter.repositoryId"


def test_every_catalog_plugin_field_names_the_columns_it_reads() -> None:
    from graphql import GraphQLObjectType

    from graph.schema import schema
    from graph.types.catalog import COLUMNS_OF_FIELD

    entry = schema._schema.get_type("CatalogPlugin")
    assert isinstance(entry, GraphQLObjectType)
    assert set(entry.fields) == set(COLUMNS_OF_FIELD)


EVERY_FIELD = """id name version displayName description category pluginType iconUrl tags
  manifest installCount avgRating ratingCount available createdAt updatedAt configSchema
  defaultConfig permissions repository { id name url type description enabled lastSyncedAt
  lastSyncError createdAt updatedAt } versions { version } installed { id } viewCount
  myRating { rating } ratings { edges { node { rating } } }"""


async def test_a_page_shows_every_field_as_the_entry_itself_does(
    gql: Execute, make_plugin: Catalog
) -> None:
    await make_plugin(
        "streamspace-slack",
        tags=["notifications", "slack"],
        avg_rating=4.5,
        rating_count=2,
        manifest={
            "name": "streamspace-slack",
            "version": "1.0.0",
            "type": "extension",
            "permissions": ["network"],
            "defaultConfig": {"channel": "#general"},
        },
    )
    page = (await gql(f"{{ catalog {{ edges {{ node {{ {EVERY_FIELD} }} }} }} }}")).ok()
    (edge,) = page["catalog"]["edges"]
    query = "query($id: ID!) { catalogPlugin(id: $id) { " + EVERY_FIELD + " } }"
    alone = (await gql(query, {"id": edge["node"]["id"]})).ok()
    assert edge["node"] == alone["catalogPlugin"]
    assert edge["node"]["permissions"] == ["network"]
    assert edge["node"]["tags"] == ["notifications", "slack"]


async def test_a_page_reads_only_the_columns_it_shows(
    gql: Execute, make_plugin: Catalog, sql_counter: QueryCounter
) -> None:
    await make_plugin("streamspace-slack")
    sql_counter.statements.clear()
    data = (await gql("{ catalog { edges { node { name } } } }", role=Role.USER)).ok()
    assert [edge["node"]["name"] for edge in data["catalog"]["edges"]] == ["streamspace-slack"]
    (page,) = sql_counter.statements
    assert '"name"' in page
    assert '"manifest"' not in page
    assert '"description"' not in page


@pytest.mark.parametrize("sort", ["POPULAR", "RATING", "NEWEST", "NAME"])
async def test_end_cursors_walk_the_pages_when_edges_show_no_cursor(
    gql: Execute, make_plugin: Catalog, sort: str
) -> None:
    for index in range(5):
        await make_plugin(f"plugin-{index}", install_count=index % 2, avg_rating=index % 3)
    query = """query($sort: CatalogSort, $after: String) {
      catalog(sort: $sort, first: 2, after: $after) {
        edges { node { name } } pageInfo { hasNextPage endCursor } } }"""
    seen: list[str] = []
    after = None
    while True:
        page = (await gql(query, {"sort": sort, "after": after}, role=Role.USER)).ok()["catalog"]
        seen += [edge["node"]["name"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert sorted(seen) == [f"plugin-{index}" for index in range(5)]


@pytest.mark.parametrize(
    "row",
    [
        {"id": 7},
        {"id": 7, "name": "x", "avg_rating": 4.5, "rating_count": 2, "version": "1.0.0"},
        {"id": 7, "tags": ["a", "b"], "manifest": {"name": "x"}, "available": False},
        {"id": 7, "repository_id": 3, "stats__view_count": None},
        {"id": 7, "stats__view_count": 12, "created_at": datetime(2026, 1, 1, tzinfo=UTC)},
    ],
)
def test_an_entry_from_a_page_row_is_the_one_its_constructor_builds(row: dict[str, Any]) -> None:
    from graph.types.catalog import CatalogPlugin as Entry

    built = Entry(
        plugin_id=row["id"],
        repository_id=row.get("repository_id"),  # type: ignore[arg-type]
        joined_repository=None,
        joined_view_count=(row["stats__view_count"] or 0) if "stats__view_count" in row else None,
        id=str(row["id"]),  # type: ignore[arg-type]
        name=row.get("name"),  # type: ignore[arg-type]
        version=row.get("version"),  # type: ignore[arg-type]
        display_name=None,
        description=None,
        category=None,
        plugin_type=None,
        icon_url=None,
        tags=list(row.get("tags") or []),
        manifest=row.get("manifest"),
        install_count=None,  # type: ignore[arg-type]
        avg_rating=row.get("avg_rating"),  # type: ignore[arg-type]
        rating_count=row.get("rating_count"),  # type: ignore[arg-type]
        available=row.get("available"),  # type: ignore[arg-type]
        created_at=row.get("created_at"),  # type: ignore[arg-type]
        updated_at=None,  # type: ignore[arg-type]
    )
    entry = Entry.from_page_row(row)
    assert entry == built
    assert vars(entry) == vars(built)
    assert entry.tags is not row.get("tags")  # a copy: the row's list is never shared


async def test_a_documents_page_selection_is_its_own(gql: Execute, catalog: None) -> None:
    """The selection a page reads is remembered per parsed document and field: the same text
    again, another alias of the field, another document, each reads what it selects."""
    both = """query($sort: CatalogSort) {
      a: catalog(sort: $sort, first: 1) { edges { node { name } } }
      b: catalog(sort: $sort, first: 1) {
        ...P edges { node { installCount repository { name } } } } }
    fragment P on CatalogPluginConnection { pageInfo { endCursor } }"""
    for sort in ("POPULAR", "POPULAR", "NAME"):
        data = (await gql(both, {"sort": sort}, role=Role.USER)).ok()
        top = "streamspace-slack" if sort == "POPULAR" else "streamspace-datadog"
        assert data["a"] == {"edges": [{"node": {"name": top}}]}
        (edge,) = data["b"]["edges"]
        assert edge["node"]["repository"] == {"name": "builtin"}
        assert isinstance(edge["node"]["installCount"], int)
        assert data["b"]["pageInfo"]["endCursor"]  # selected through a fragment
        alone = (await gql("{ catalog { edges { node { displayName } } } }", role=Role.USER)).ok()
        assert all(edge["node"]["displayName"] for edge in alone["catalog"]["edges"])


async def test_the_end_cursor_is_the_last_edges_cursor(gql: Execute, catalog: None) -> None:
    query = "{ catalog(first: 2) { pageInfo { endCursor } edges { cursor } } }"
    page = (await gql(query, role=Role.USER)).ok()["catalog"]
    assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]

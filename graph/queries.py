"""The Query type."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, cast

import strawberry
from strawberry.types.nodes import SelectedField, Selection

from graph.context import Info
from graph.permissions import IsAnyone, IsUser
from graph.types.catalog import (
    COLUMNS_OF_FIELD,
    CatalogFilter,
    CatalogPlugin,
    CatalogPluginConnection,
    CatalogPluginEdge,
    CatalogSort,
)
from graph.types.common import PageInfo, bounded, column_length, field, parse_id
from graph.types.installed import InstalledPlugin
from graph.types.repository import Repository
from graph.types.viewer import Viewer
from models import CatalogPlugin as CatalogPluginRow
from models import CatalogTag as CatalogTagRow
from models import InstalledPlugin as InstalledPluginRow
from models import Repository as RepositoryRow
from runtime.catalog import browse as catalog
from runtime.catalog.installs import get_installed
from runtime.core.errors import BadUserInput, FieldProblem, NotFound
from runtime.db.pagination import page_size

log = logging.getLogger(__name__)


# Longer searches match nothing anyone wrote, and SQLite refuses LIKE patterns over 50 000.
MAX_SEARCH_LENGTH = 200
MAX_TAGS = 20


def _tags(tags: list[str] | None) -> tuple[str, ...]:
    if tags and len(tags) > MAX_TAGS:
        raise BadUserInput(
            f"filter.tags: at most {MAX_TAGS} tags, not {len(tags)}",
            [FieldProblem("filter.tags", f"at most {MAX_TAGS} tags")],
        )
    limit = column_length(CatalogTagRow, "tag")
    return tuple(cast(str, bounded(tag, "filter.tags", limit)) for tag in tags or ())


def _catalog_search(filter: CatalogFilter | None, sort: CatalogSort) -> catalog.CatalogSearch:
    given = filter or CatalogFilter()
    return catalog.CatalogSearch(
        category=bounded(
            given.category, "filter.category", column_length(CatalogPluginRow, "category")
        ),
        plugin_type=bounded(
            given.type, "filter.type", column_length(CatalogPluginRow, "plugin_type")
        ),
        search=bounded(given.search, "filter.search", MAX_SEARCH_LENGTH),
        tags=_tags(given.tags),
        repository_id=(
            parse_id(given.repository_id, "filter.repositoryId")
            if given.repository_id is not None
            else None
        ),
        installed=given.installed,
        available=given.available,
        sort=sort,
    )


# The catalog node fields whose rows a page joins rather than loads separately.
RELATION_OF_FIELD = {"repository": "repository", "viewCount": "stats"}


Names = frozenset[str]


def _page_selection(info: Info) -> tuple[Names, Names, Names]:
    """The fields a page selects on itself, on its edges and on their nodes:
    pageInfo edges { cursor node { … } }."""
    # Names only, from the document alone: the same for every request of the same text,
    # whose parsed operation the parser cache hands back. The operation is kept with its
    # entry so that its id is not reused while remembered.
    key = (id(info.operation), tuple(info.path.as_list()))
    known = _SELECTIONS.get(key)
    if known is not None and known[0] is info.operation:
        return known[1]
    page_fields: set[str] = set()
    edge_fields: set[str] = set()
    node_fields: set[str] = set()
    catalog = [selection for field in info.selected_fields for selection in field.selections]
    page_fields |= _names(catalog)
    for edges in _children(catalog, "edges"):
        edge_fields |= _names(edges.selections)
        for node in _children(edges.selections, "node"):
            node_fields |= _names(node.selections)
    selection = (frozenset(page_fields), frozenset(edge_fields), frozenset(node_fields))
    _SELECTIONS[key] = (info.operation, selection)
    if len(_SELECTIONS) > MAX_SELECTIONS:
        _SELECTIONS.pop(next(iter(_SELECTIONS)))
    return selection


MAX_SELECTIONS = 512
_SELECTIONS: dict[tuple[int, tuple[str | int, ...]], tuple[Any, tuple[Names, Names, Names]]] = {}


def _children(selections: Sequence[Selection], name: str) -> list[SelectedField]:
    found = []
    for selection in selections:
        if isinstance(selection, SelectedField):
            if selection.name == name:
                found.append(selection)
        else:  # a fragment: its selections count as ours
            found.extend(_children(selection.selections, name))
    return found


def _names(selections: Sequence[Selection]) -> set[str]:
    names: set[str] = set()
    for selection in selections:
        if isinstance(selection, SelectedField):
            names.add(selection.name)
        else:
            names |= _names(selection.selections)
    return names


@strawberry.type
class CatalogQuery:
    @field(permission_classes=[IsUser], description="Browse the catalog.")
    async def catalog(
        self,
        info: Info,
        filter: CatalogFilter | None = None,
        sort: CatalogSort = CatalogSort.POPULAR,
        first: int | None = 20,
        after: str | None = None,
    ) -> CatalogPluginConnection:
        query = _catalog_search(filter, sort)
        size = page_size(first)
        page_fields, edge_fields, node_fields = _page_selection(info)
        columns = {column for name in node_fields for column in COLUMNS_OF_FIELD.get(name, ())}
        related = sorted({RELATION_OF_FIELD[n] for n in node_fields if n in RELATION_OF_FIELD})
        rows = await query.fetch_page(
            size,
            after,
            ["id", *sorted(columns)],
            related,
            cached=info.context.services.settings.fast_paths,
        )
        page = rows[:size]
        # An edge's cursor is never read unless selected: encoding it for nothing is a good
        # part of a page's cost.
        cursors = "cursor" in edge_fields
        edges = [
            CatalogPluginEdge(
                cursor=query.cursor_of(row) if cursors else "",
                node=CatalogPlugin.from_page_row(row),
            )
            for row in page
        ]
        return CatalogPluginConnection(
            query=query,
            edges=edges,
            page_info=PageInfo(
                has_next_page=len(rows) > size,
                # Like an edge's cursor, encoded only when it can be read.
                end_cursor=query.cursor_of(page[-1])
                if page and "pageInfo" in page_fields
                else None,
            ),
        )

    @field(permission_classes=[IsUser], description="One entry; counts a view.")
    async def catalog_plugin(self, info: Info, id: strawberry.ID) -> CatalogPlugin | None:
        row = await catalog.get_catalog_plugin(parse_id(id))
        try:
            info.context.services.views.count(row.id)
        except Exception:
            # A view is a statistic: losing one is better than failing the page that shows it.
            log.exception("counting a view of catalog plugin %s failed", row.id)
        return CatalogPlugin.from_row(row)

    @field(permission_classes=[IsUser])
    async def repositories(self) -> list[Repository]:
        return [Repository.from_row(row) for row in await RepositoryRow.all().order_by("id")]

    @field(permission_classes=[IsUser])
    async def installed_plugins(self, enabled: bool | None = None) -> list[InstalledPlugin]:
        query = InstalledPluginRow.all()
        if enabled is not None:
            query = query.filter(enabled=enabled)
        return [InstalledPlugin.from_row(row) for row in await query.order_by("name")]

    @field(permission_classes=[IsUser], description="By id or by name.")
    async def installed_plugin(
        self, id: strawberry.ID | None = None, name: str | None = None
    ) -> InstalledPlugin | None:
        plugin_id = parse_id(id) if id is not None else None
        name = bounded(name, "name", column_length(InstalledPluginRow, "name"))
        try:
            row = await get_installed(plugin_id, name)
        except NotFound:
            return None
        return InstalledPlugin.from_row(row)

    @field(permission_classes=[IsAnyone])
    def viewer(self, info: Info) -> Viewer | None:
        principal = info.context.principal
        assert principal is not None  # IsAnyone has checked it
        return Viewer(
            subject=principal.subject, roles=sorted(role.value for role in principal.roles)
        )

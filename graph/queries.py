"""The Query type."""

from __future__ import annotations

import strawberry

from graph.context import Info
from graph.permissions import IsAnyone, IsUser
from graph.types.catalog import (
    CatalogFilter,
    CatalogPlugin,
    CatalogPluginConnection,
    CatalogPluginEdge,
    CatalogSort,
)
from graph.types.common import PageInfo
from graph.types.installed import InstalledPlugin
from graph.types.repository import Repository
from graph.types.viewer import Viewer
from models import InstalledPlugin as InstalledPluginRow
from models import Repository as RepositoryRow
from runtime import catalog
from runtime.errors import NotFound
from runtime.installs import get_installed
from runtime.pagination import page_size


def _catalog_query(filter: CatalogFilter | None, sort: CatalogSort) -> catalog.CatalogQuery:
    given = filter or CatalogFilter()
    return catalog.CatalogQuery(
        category=given.category,
        plugin_type=given.type,
        search=given.search,
        tags=tuple(given.tags or ()),
        repository_id=int(given.repository_id) if given.repository_id is not None else None,
        installed=given.installed,
        available=given.available,
        sort=catalog.CatalogSort(sort.value),
    )


@strawberry.type
class Query:
    @strawberry.field(permission_classes=[IsUser], description="Browse the catalog.")
    async def catalog(
        self,
        filter: CatalogFilter | None = None,
        sort: CatalogSort = CatalogSort.POPULAR,
        first: int | None = 20,
        after: str | None = None,
    ) -> CatalogPluginConnection:
        query = _catalog_query(filter, sort)
        size = page_size(first)
        rows = await query.page(size, after)
        edges = [
            CatalogPluginEdge(cursor=query.cursor_of(row), node=CatalogPlugin.from_row(row))
            for row in rows[:size]
        ]
        return CatalogPluginConnection(
            query=query,
            edges=edges,
            page_info=PageInfo(
                has_next_page=len(rows) > size, end_cursor=edges[-1].cursor if edges else None
            ),
        )

    @strawberry.field(permission_classes=[IsUser], description="One entry; counts a view.")
    async def catalog_plugin(self, info: Info, id: strawberry.ID) -> CatalogPlugin | None:
        row = await catalog.get_catalog_plugin(int(id))
        info.context.services.views.count(row.id)
        return CatalogPlugin.from_row(row)

    @strawberry.field(permission_classes=[IsUser])
    async def repositories(self) -> list[Repository]:
        return [Repository.from_row(row) for row in await RepositoryRow.all().order_by("id")]

    @strawberry.field(permission_classes=[IsUser])
    async def installed_plugins(self, enabled: bool | None = None) -> list[InstalledPlugin]:
        query = InstalledPluginRow.all()
        if enabled is not None:
            query = query.filter(enabled=enabled)
        return [InstalledPlugin.from_row(row) for row in await query.order_by("name")]

    @strawberry.field(permission_classes=[IsUser], description="By id or by name.")
    async def installed_plugin(
        self, id: strawberry.ID | None = None, name: str | None = None
    ) -> InstalledPlugin | None:
        try:
            row = await get_installed(int(id) if id is not None else None, name)
        except NotFound:
            return None
        return InstalledPlugin.from_row(row)

    @strawberry.field(permission_classes=[IsAnyone])
    def viewer(self, info: Info) -> Viewer | None:
        principal = info.context.principal
        assert principal is not None  # IsAnyone has checked it
        return Viewer(
            subject=principal.subject, roles=sorted(role.value for role in principal.roles)
        )

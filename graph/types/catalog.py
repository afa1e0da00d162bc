"""Catalog entries, their versions and catalog pages."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, cast

import strawberry
from strawberry.scalars import JSON

from graph.context import Info
from graph.types.common import PageInfo, field
from graph.types.rating import PluginRating, PluginRatingConnection, PluginRatingEdge
from graph.types.repository import Repository
from models import CatalogPlugin as CatalogPluginRow
from models import PluginRating as PluginRatingRow
from models import PluginStats as PluginStatsRow
from models import PluginVersion as PluginVersionRow
from models import Repository as RepositoryRow
from runtime import catalog
from runtime.config_schema import normalise_schema
from runtime.pagination import SortKey, after_q, encode_cursor, page_size

if TYPE_CHECKING:
    from graph.types.installed import InstalledPlugin

_RATING_KEYS = (SortKey("updated_at", True), SortKey("id", True))


@strawberry.enum
class CatalogSort(Enum):
    POPULAR = "popular"
    RATING = "rating"
    NEWEST = "newest"
    NAME = "name"


@strawberry.input
class CatalogFilter:
    """Every field narrows the list; `tags` keeps entries carrying all of the given tags."""

    category: str | None = None
    type: str | None = None
    search: str | None = None
    tags: list[str] | None = None
    repository_id: strawberry.ID | None = None
    installed: bool | None = None
    available: bool | None = strawberry.field(
        default=True, description="true: offered now (default); false: gone; null: both"
    )


@strawberry.type
class PluginVersion:
    version: str
    manifest: JSON
    archive_url: str | None
    sha256: str | None
    published_at: datetime | None

    @classmethod
    def from_row(cls, row: PluginVersionRow) -> PluginVersion:
        return cls(
            version=row.version,
            manifest=row.manifest,
            archive_url=row.archive_url,
            sha256=row.sha256,
            published_at=row.published_at,
        )


@strawberry.type
class CatalogPlugin:
    """A plugin a repository offers; `version` is the newest it offers.

    Example:
        ```graphql
        { catalog(filter: {search: "slack"}, sort: RATING) {
            totalCount edges { node { name version avgRating installed { enabled } } } } }
        ```
    """

    row: strawberry.Private[CatalogPluginRow]
    id: strawberry.ID
    name: str
    version: str
    display_name: str | None
    description: str | None
    category: str | None
    plugin_type: str | None
    icon_url: str | None
    tags: list[str]
    manifest: JSON
    install_count: int
    avg_rating: float
    rating_count: int
    available: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: CatalogPluginRow) -> CatalogPlugin:
        return cls(
            row=row,
            id=strawberry.ID(str(row.id)),
            name=row.name,
            version=row.version,
            display_name=row.display_name,
            description=row.description,
            category=row.category,
            plugin_type=row.plugin_type,
            icon_url=row.icon_url,
            tags=list(row.tags or []),
            manifest=row.manifest,
            install_count=row.install_count,
            avg_rating=row.avg_rating,
            rating_count=row.rating_count,
            available=row.available,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    @field(description="The configuration schema as standard JSON Schema.")
    def config_schema(self) -> JSON:
        return cast(JSON, normalise_schema(self.row.manifest.get("configSchema")))

    @strawberry.field
    def default_config(self) -> JSON:
        return cast(JSON, dict(self.row.manifest.get("defaultConfig") or {}))

    @strawberry.field
    def permissions(self) -> list[str]:
        return [str(p) for p in self.row.manifest.get("permissions") or []]

    @strawberry.field
    async def repository(self, info: Info) -> Repository:
        # A catalog page selects the repository in its own query; other paths batch it.
        row = getattr(self.row, "_repository", None)
        if not isinstance(row, RepositoryRow):
            row = await info.context.loaders.repository.load(self.row.repository_id)
        assert row is not None  # the foreign key guarantees it
        return Repository.from_row(row)

    @strawberry.field
    async def versions(self, info: Info) -> list[PluginVersion]:
        rows = await info.context.loaders.versions.load(self.row.id)
        return [PluginVersion.from_row(row) for row in rows]

    @strawberry.field
    async def installed(
        self, info: Info
    ) -> Annotated[InstalledPlugin, strawberry.lazy("graph.types.installed")] | None:
        from graph.types.installed import InstalledPlugin

        row = await info.context.loaders.installed_by_catalog_id.load(self.row.id)
        return InstalledPlugin.from_row(row) if row else None

    @strawberry.field
    async def view_count(self, info: Info) -> int:
        # A catalog page joins the statistics in; a single entry batches them.
        if "_stats" in vars(self.row):
            stats: PluginStatsRow | None = vars(self.row)["_stats"]
        else:
            stats = await info.context.loaders.stats.load(self.row.id)
        return stats.view_count if stats else 0

    @field(description="The caller's own rating, if any.")
    async def my_rating(self, info: Info) -> PluginRating | None:
        row = await info.context.loaders.my_rating.load(self.row.id)
        return PluginRating.from_row(row) if row else None

    @field(description="Ratings with reviews, newest first.")
    async def ratings(
        self, first: int | None = 20, after: str | None = None
    ) -> PluginRatingConnection:
        size = page_size(first)
        query = PluginRatingRow.filter(plugin_id=self.row.id)
        if after:
            values = catalog.decode_after(PluginRatingRow, _RATING_KEYS, after)
            query = query.filter(after_q(_RATING_KEYS, values))
        rows = await query.order_by(*(key.ordering for key in _RATING_KEYS)).limit(size + 1)
        edges = [
            PluginRatingEdge(
                cursor=encode_cursor([row.updated_at.isoformat(), row.id]),
                node=PluginRating.from_row(row),
            )
            for row in rows[:size]
        ]
        return PluginRatingConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=len(rows) > size, end_cursor=edges[-1].cursor if edges else None
            ),
        )


@strawberry.type
class CatalogPluginEdge:
    cursor: str
    node: CatalogPlugin


@strawberry.type
class CatalogPluginConnection:
    query: strawberry.Private[catalog.CatalogQuery]
    edges: list[CatalogPluginEdge]
    page_info: PageInfo

    @field(description="How many entries match the filter (counted only when asked).")
    async def total_count(self) -> int:
        return await self.query.filtered().count()

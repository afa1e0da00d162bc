"""Catalog entries, their versions and catalog pages."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias, cast

import strawberry
from strawberry.scalars import JSON

from graph._fast.leaf_inputs import leaf_input
from graph.context import Info
from graph.types.common import PageInfo, field
from graph.types.rating import PluginRating, PluginRatingConnection, PluginRatingEdge
from graph.types.repository import Repository
from models import CatalogPlugin as CatalogPluginRow
from models import PluginRating as PluginRatingRow
from models import PluginVersion as PluginVersionRow
from runtime.catalog import browse as catalog
from runtime.catalog.config_schema import normalise_schema
from runtime.core.url_credentials import split_credentials
from runtime.db.pagination import SortKey, after_q, encode_cursor, page_size

if TYPE_CHECKING:
    from graph.types.installed import InstalledPlugin

_RATING_KEYS = (SortKey("updated_at", True), SortKey("id", True))


# The runtime's enum, exported to GraphQL as it is.
CatalogSort: TypeAlias = catalog.CatalogSort
strawberry.enum(CatalogSort)


@leaf_input
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
            # An index may name an archive with credentials in its URL: they are not shown.
            archive_url=None if row.archive_url is None else split_credentials(row.archive_url)[0],
            sha256=row.sha256,
            published_at=row.published_at,
        )


# The catalog_plugins columns each CatalogPlugin field reads: a catalog page selects only
# those (and the id, which every relation keys on).
COLUMNS_OF_FIELD: dict[str, tuple[str, ...]] = {
    "id": (),
    "name": ("name",),
    "version": ("version",),
    "displayName": ("display_name",),
    "description": ("description",),
    "category": ("category",),
    "pluginType": ("plugin_type",),
    "iconUrl": ("icon_url",),
    "tags": ("tags",),
    "manifest": ("manifest",),
    "installCount": ("install_count",),
    "avgRating": ("avg_rating",),
    "ratingCount": ("rating_count",),
    "available": ("available",),
    "createdAt": ("created_at",),
    "updatedAt": ("updated_at",),
    "configSchema": ("manifest",),
    "defaultConfig": ("manifest",),
    "permissions": ("manifest",),
    "repository": ("repository_id",),
    "versions": (),
    "installed": (),
    "viewCount": (),
    "myRating": (),
    "ratings": (),
}


@strawberry.type
class CatalogPlugin:
    """A plugin a repository offers; `version` is the newest it offers.

    Example:
        ```graphql
        { catalog(filter: {search: "slack"}, sort: RATING) {
            totalCount edges { node { name version avgRating installed { enabled } } } } }
        ```
    """

    plugin_id: strawberry.Private[int]
    repository_id: strawberry.Private[int]
    # Set when the page joined the row in; None: the resolver batches it through a loader.
    joined_repository: strawberry.Private[Repository | None]
    joined_view_count: strawberry.Private[int | None]
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
        columns = CatalogPluginRow._meta.fields_db_projection  # repository_id included
        return cls.from_page_row({column: getattr(row, column) for column in columns})

    @classmethod
    def from_page_row(cls, row: Mapping[str, Any]) -> CatalogPlugin:
        """An entry from a row of `catalog.CatalogSearch.page`.

        The row holds only the columns the selection reads (`columns_of`); the fields it
        lacks are never resolved, so they hold None instead of a value.
        """
        # The instance's attributes are filled directly: the generated __init__ takes 20
        # keyword arguments, several times the cost of this for each of a page's entries
        # (the class has no __post_init__; tests check both build equal entries).
        entry = cls.__new__(cls)
        attributes = entry.__dict__
        attributes.update(_NO_COLUMNS)
        for column, value in row.items():
            if column in _COPIED_COLUMNS:
                attributes[column] = value
        attributes["plugin_id"] = row["id"]
        attributes["id"] = strawberry.ID(str(row["id"]))
        attributes["tags"] = list(row.get("tags") or [])
        if "repository__id" in row:
            attributes["joined_repository"] = Repository.from_columns(
                {c: row[f"repository__{c}"] for c in catalog.RELATED_COLUMNS["repository"]}
            )
        if "stats__view_count" in row:
            # No statistics row yet: never viewed.
            attributes["joined_view_count"] = row["stats__view_count"] or 0
        return entry

    @property
    def _manifest(self) -> dict[str, Any]:
        return cast(dict[str, Any], self.manifest)

    @field(description="The configuration schema as standard JSON Schema.")
    def config_schema(self) -> JSON:
        return cast(JSON, normalise_schema(self._manifest.get("configSchema")))

    @strawberry.field
    def default_config(self) -> JSON:
        return cast(JSON, dict(self._manifest.get("defaultConfig") or {}))

    @strawberry.field
    def permissions(self) -> list[str]:
        return [str(p) for p in self._manifest.get("permissions") or []]

    @strawberry.field
    async def repository(self, info: Info) -> Repository:
        if self.joined_repository is not None:
            return self.joined_repository
        row = await info.context.loaders.repository.load(self.repository_id)
        assert row is not None  # the foreign key guarantees it
        return Repository.from_row(row)

    @strawberry.field
    async def versions(self, info: Info) -> list[PluginVersion]:
        rows = await info.context.loaders.versions.load(self.plugin_id)
        return [PluginVersion.from_row(row) for row in rows]

    @strawberry.field
    async def installed(
        self, info: Info
    ) -> Annotated[InstalledPlugin, strawberry.lazy("graph.types.installed")] | None:
        from graph.types.installed import InstalledPlugin

        row = await info.context.loaders.installed_by_catalog_id.load(self.plugin_id)
        return InstalledPlugin.from_row(row) if row else None

    @strawberry.field
    async def view_count(self, info: Info) -> int:
        if self.joined_view_count is not None:
            return self.joined_view_count
        stats = await info.context.loaders.stats.load(self.plugin_id)
        return stats.view_count if stats else 0

    @field(description="The caller's own rating, if any.")
    async def my_rating(self, info: Info) -> PluginRating | None:
        row = await info.context.loaders.my_rating.load(self.plugin_id)
        return PluginRating.from_row(row) if row else None

    @field(description="Ratings with reviews, newest first.")
    async def ratings(
        self, first: int | None = 20, after: str | None = None
    ) -> PluginRatingConnection:
        size = page_size(first)
        query = PluginRatingRow.filter(plugin_id=self.plugin_id)
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


# What `from_page_row` fills: every attribute the constructor takes, None unless the row holds
# its column; the columns kept as they are read.
_NO_COLUMNS: dict[str, Any] = dict.fromkeys(
    field.name for field in dataclasses.fields(CatalogPlugin) if field.init
)
_COPIED_COLUMNS = frozenset(_NO_COLUMNS) - {
    "plugin_id",
    "id",
    "tags",
    "joined_repository",
    "joined_view_count",
}


@strawberry.type
class CatalogPluginEdge:
    cursor: str
    node: CatalogPlugin


@strawberry.type
class CatalogPluginConnection:
    query: strawberry.Private[catalog.CatalogSearch]
    edges: list[CatalogPluginEdge]
    page_info: PageInfo

    @field(description="How many entries match the filter (counted only when asked).")
    async def total_count(self) -> int:
        return await self.query.filtered().count()

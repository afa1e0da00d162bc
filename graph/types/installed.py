"""Installed plugins."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, TypeAlias, cast

import strawberry
from strawberry.scalars import JSON

from graph.context import Info
from graph.permissions import IsAdmin
from graph.types.common import field
from models import InstalledPlugin as InstalledPluginRow
from runtime.catalog import installs
from runtime.catalog.installs import manifest_of
from runtime.catalog.run_settings import RunLimits, RunSettings
from runtime.delivery.stats import delivery_stats
from runtime.sdk.extensions import PluginRoute as DeclaredRoute

if TYPE_CHECKING:
    from graph.types.catalog import CatalogPlugin


# The runtime's enum, exported to GraphQL as it is.
PluginStatus: TypeAlias = installs.PluginStatus
strawberry.enum(PluginStatus)


@strawberry.type(
    description="How the runtime runs a plugin. Set by its manifest, overridden per "
    "installation by an admin (installPlugin, updatePlugin); never by the plugin's config."
)
class PluginSettings:
    concurrency: int | None = strawberry.field(
        default=None, description="Deliveries run at once, 1 to 256."
    )
    timeout_seconds: float | None = strawberry.field(
        default=None,
        description="Seconds each of its hooks may take, 0.1 to 600: event hooks, on_load, "
        "on_enable, on_disable, on_unload, its connection test (testPlugin) and its actions.",
    )

    @classmethod
    def of(cls, settings: RunSettings | RunLimits) -> PluginSettings:
        return cls(concurrency=settings.concurrency, timeout_seconds=settings.timeout_seconds)


@strawberry.type
class InstalledPluginStats:
    """Delivery figures of the plugin: succeeded, failing now (RETRYING), dead."""

    delivered: int = 0
    failed: int = 0
    dead: int = 0
    avg_duration_ms: float | None = None
    last_delivery_at: datetime | None = None


@strawberry.type
class PluginRoute:
    """An HTTP route the plugin serves under `/plugins/<name>/` while it is active."""

    path: str = strawberry.field(description="As the plugin declared it, e.g. /count.")
    url: str = strawberry.field(description="Its path on this server: /plugins/<name><path>.")
    methods: list[str]
    role: str | None = strawberry.field(
        description="The role a caller's bearer token must hold (admin, user, platform); "
        "null when the route is public."
    )
    public: bool = strawberry.field(
        description="Whether anyone may call it, without a token: the plugin said so."
    )

    @classmethod
    def of(cls, plugin: str, route: DeclaredRoute) -> PluginRoute:
        return cls(
            path=route.path,
            url=f"/plugins/{plugin}{route.path}",
            methods=list(route.methods),
            role=None if route.role is None else route.role.value,
            public=route.public,
        )


@strawberry.type
class InstalledPlugin:
    """A plugin installed on this server.

    Example:
        ```graphql
        mutation { installPlugin(catalogPluginId: "3", config: {webhookUrl: "https://…"},
                                 enable: true) { id status config } }
        ```
    """

    row: strawberry.Private[InstalledPluginRow]
    id: strawberry.ID
    name: str
    version: str
    enabled: bool
    status: PluginStatus
    installed_by: str | None
    installed_at: datetime
    updated_at: datetime
    last_error: str | None
    previous_version: str | None = None

    @classmethod
    def from_row(cls, row: InstalledPluginRow) -> InstalledPlugin:
        return cls(
            row=row,
            id=strawberry.ID(str(row.id)),
            name=row.name,
            version=row.version,
            enabled=row.enabled,
            status=PluginStatus(row.status),
            installed_by=row.installed_by,
            installed_at=row.installed_at,
            updated_at=row.updated_at,
            last_error=row.last_error,
            previous_version=row.previous_version,
        )

    @field(
        description="The configuration; secret values that are set read as ********.",
        permission_classes=[IsAdmin],
    )
    async def config(self, info: Info) -> JSON:
        manifest = await manifest_of(self.row)
        return cast(JSON, info.context.services.installer.visible_config(self.row, manifest))

    @strawberry.field
    async def catalog_plugin(
        self, info: Info
    ) -> Annotated[CatalogPlugin, strawberry.lazy("graph.types.catalog")] | None:
        from graph.types.catalog import CatalogPlugin

        if self.row.catalog_plugin_id is None:
            return None
        row = await info.context.loaders.catalog_plugin.load(self.row.catalog_plugin_id)
        return CatalogPlugin.from_row(row) if row else None

    @field(description="Versions the plugin's repository offers, oldest first.")
    async def available_versions(self, info: Info) -> list[str]:
        if self.row.catalog_plugin_id is None:
            return []
        rows = await info.context.loaders.versions.load(self.row.catalog_plugin_id)
        return [row.version for row in rows]

    @field(
        description="The HTTP routes it registered, and who may call each; empty while it is "
        "not loaded on the server answering."
    )
    def routes(self, info: Info) -> list[PluginRoute]:
        loaded = info.context.services.host.loaded.get(self.name)
        if loaded is None:
            return []
        return [PluginRoute.of(self.name, route) for route in loaded.context.api.routes]

    @field(
        description="The admin's overrides of the manifest's run settings; null where the "
        "manifest's value (or the server's default) applies."
    )
    def settings(self) -> PluginSettings:
        return PluginSettings(
            concurrency=self.row.concurrency, timeout_seconds=self.row.timeout_seconds
        )

    @field(
        description="The run settings in force: the installation's, else the manifest's, else "
        "the server's defaults; null while the plugin is not loaded on the server answering."
    )
    def running_settings(self, info: Info) -> PluginSettings | None:
        loaded = info.context.services.host.loaded.get(self.name)
        return None if loaded is None else PluginSettings.of(loaded.limits)

    @field(description="Delivery figures, from the deliveries still kept (see retention).")
    async def stats(self) -> InstalledPluginStats:
        figures = await delivery_stats(self.row.name)
        return InstalledPluginStats(
            delivered=figures.delivered,
            failed=figures.failing,
            dead=figures.dead,
            avg_duration_ms=figures.avg_duration_ms,
            last_delivery_at=figures.last_delivery_at,
        )

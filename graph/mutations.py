"""The Mutation type."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types.unset import UNSET

from graph.context import Info
from graph.permissions import IsAdmin, IsUser
from graph.types.common import bounded, column_length, mutation, parse_id
from graph.types.installed import InstalledPlugin
from graph.types.rating import PluginRating
from graph.types.repository import Repository, RepositoryType, SyncResult
from models import PluginVersion as PluginVersionRow
from runtime.catalog import repositories
from runtime.catalog.ratings import rate_plugin
from runtime.core.errors import BadUserInput, FieldProblem


@strawberry.input
class AddRepositoryInput:
    name: str
    url: str
    type: RepositoryType = RepositoryType.INDEX
    description: str | None = None


@strawberry.input(
    description="An installation's override of its manifest's run settings: a field left out "
    "keeps its value, null returns to the manifest's (or the server's default)."
)
class PluginSettingsInput:
    concurrency: int | None = strawberry.field(
        default=UNSET, description="Deliveries run at once, 1 to 256."
    )
    timeout_seconds: float | None = strawberry.field(
        default=UNSET, description="Seconds each of its hooks may take, 0.1 to 600."
    )

    def given(self) -> dict[str, Any]:
        """The fields the caller sent, by their GraphQL names (null included)."""
        sent = {"concurrency": self.concurrency, "timeoutSeconds": self.timeout_seconds}
        return {key: value for key, value in sent.items() if value is not UNSET}


def _settings(value: PluginSettingsInput | None) -> dict[str, Any] | None:
    return None if value is None else value.given()


def _config(value: Any, path: str = "config") -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadUserInput(
            f"{path} must be a JSON object", [FieldProblem(path, "must be an object")]
        )
    return value


@strawberry.type
class CatalogMutation:
    @mutation(
        permission_classes=[IsAdmin],
        description="A user name and password in the URL (https://user:token@host/...) are "
        "stored encrypted, used only to read the repository, and never shown.",
    )
    async def add_repository(self, info: Info, input: AddRepositoryInput) -> Repository:
        row = await repositories.add_repository(
            input.name,
            input.url,
            input.type,
            input.description,
            box=info.context.services.box,
            policy=info.context.services.host.network,
        )
        return Repository.from_row(row)

    @mutation(permission_classes=[IsAdmin])
    async def remove_repository(self, id: strawberry.ID) -> strawberry.ID:
        return strawberry.ID(str(await repositories.remove_repository(parse_id(id))))

    @mutation(permission_classes=[IsAdmin], description="Fetch the index; update the catalog.")
    async def sync_repository(self, info: Info, id: strawberry.ID) -> SyncResult:
        services = info.context.services
        return SyncResult.from_result(
            await repositories.sync_repository(
                parse_id(id),
                data_dir=services.settings.data_dir,
                box=services.box,
                policy=services.host.network,
            )
        )

    @mutation(permission_classes=[IsAdmin])
    async def install_plugin(
        self,
        info: Info,
        catalog_plugin_id: strawberry.ID,
        config: JSON | None = None,
        enable: bool = False,
        install_dependencies: bool = False,
        settings: PluginSettingsInput | None = None,
    ) -> InstalledPlugin:
        principal = info.context.principal
        assert principal is not None
        row = await info.context.services.installer.install(
            parse_id(catalog_plugin_id, "catalogPluginId"),
            _config(config),
            enable=enable,
            installed_by=principal.subject,
            install_dependencies=install_dependencies,
            settings=_settings(settings),
        )
        return InstalledPlugin.from_row(row)

    @mutation(
        permission_classes=[IsAdmin],
        description="Move to another offered version (the newest when none is given); "
        "the configuration is migrated, and the old version keeps running if it does not fit.",
    )
    async def upgrade_plugin(
        self, info: Info, id: strawberry.ID, version: str | None = None
    ) -> InstalledPlugin:
        plugin_id = parse_id(id)
        version = bounded(version, "version", column_length(PluginVersionRow, "version"))
        row = await info.context.services.installer.upgrade(plugin_id, version)
        return InstalledPlugin.from_row(row)

    @mutation(
        permission_classes=[IsAdmin],
        description="Return to the version before the last upgrade, with its configuration.",
    )
    async def rollback_plugin(self, info: Info, id: strawberry.ID) -> InstalledPlugin:
        row = await info.context.services.installer.rollback(parse_id(id))
        return InstalledPlugin.from_row(row)

    @mutation(
        permission_classes=[IsAdmin],
        description="Merge config (null resets a key; secrets left out stay), change the run "
        "settings and/or switch on/off.",
    )
    async def update_plugin(
        self,
        info: Info,
        id: strawberry.ID,
        config: JSON | None = None,
        enabled: bool | None = None,
        settings: PluginSettingsInput | None = None,
    ) -> InstalledPlugin:
        row = await info.context.services.installer.update(
            parse_id(id), _config(config), enabled, _settings(settings)
        )
        return InstalledPlugin.from_row(row)

    @mutation(permission_classes=[IsAdmin])
    async def enable_plugin(self, info: Info, id: strawberry.ID) -> InstalledPlugin:
        row = await info.context.services.installer.update(parse_id(id), None, True)
        return InstalledPlugin.from_row(row)

    @mutation(permission_classes=[IsAdmin])
    async def disable_plugin(self, info: Info, id: strawberry.ID) -> InstalledPlugin:
        row = await info.context.services.installer.update(parse_id(id), None, False)
        return InstalledPlugin.from_row(row)

    @mutation(permission_classes=[IsAdmin])
    async def uninstall_plugin(self, info: Info, id: strawberry.ID) -> strawberry.ID:
        return strawberry.ID(str(await info.context.services.installer.uninstall(parse_id(id))))

    @mutation(permission_classes=[IsUser], description="One rating per user; 1..5.")
    async def rate_plugin(
        self, info: Info, catalog_plugin_id: strawberry.ID, rating: int, review: str | None = None
    ) -> PluginRating:
        principal = info.context.principal
        assert principal is not None
        row = await rate_plugin(
            parse_id(catalog_plugin_id, "catalogPluginId"), principal.subject, rating, review
        )
        return PluginRating.from_row(row)

"""Installing, configuring, enabling, disabling and uninstalling plugins.

Configuration is validated against the manifest's schema before anything is written; secret
values are encrypted into their own column and never leave the server again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from models import CatalogPlugin, InstalledPlugin, PluginStats, PluginVersion
from runtime.catalog import run_settings
from runtime.catalog.config_schema import (
    SecretShape,
    normalise_schema,
    schema_defaults,
    secret_keys,
    secret_shape,
    validate_config,
)
from runtime.catalog.dependencies import Unmet, dependencies_of, satisfies, specifier_of, unmet
from runtime.catalog.secret_config import (
    ABSENT,
    MaskWithoutSecret,
    keep_secrets,
    mask_leaves,
    mask_secrets,
    merge_secrets,
    split_secrets,
)
from runtime.catalog.sources.offers import version_key
from runtime.core.errors import BadUserInput, Conflict, FieldProblem, NotFound
from runtime.core.secrets import SecretBox
from runtime.hosting.loader import PluginCode, check_requirements

MAX_CONFIG_BYTES = 64 * 1024
Apply = Callable[[str], Awaitable[None]]


class PluginStatus(StrEnum):
    """Where an installed plugin stands; a member is its name as a string, as the
    `installed_plugins.status` column and the status messages hold it."""

    INSTALLED = "INSTALLED"  # enabled, not loaded yet
    LOADING = "LOADING"  # its code being fetched, or on_load and on_enable running
    ACTIVE = "ACTIVE"
    DEGRADED = "DEGRADED"  # its circuit breaker is open: hooks kept failing
    FAILED = "FAILED"  # it could not be loaded; last_error says why
    DISABLED = "DISABLED"


@dataclass(frozen=True)
class PluginSchema:
    """What a plugin's manifest says about its configuration."""

    schema: dict[str, Any]
    defaults: dict[str, Any]
    # Where secret values sit, at any depth; None when the schema marks none.
    shape: SecretShape | None = None

    @classmethod
    def of(cls, manifest: Mapping[str, Any]) -> PluginSchema:
        schema = normalise_schema(manifest.get("configSchema"))
        defaults = {**schema_defaults(schema), **dict(manifest.get("defaultConfig") or {})}
        return cls(schema=schema, defaults=defaults, shape=secret_shape(schema))

    @property
    def secrets(self) -> set[str]:
        """Top-level keys that are secret as a whole."""
        return secret_keys(self.schema)

    def kept(self, given: Mapping[str, Any], stored: Mapping[str, Any]) -> dict[str, Any]:
        """`given`'s values with the stored secrets they keep (a mask, a secret left out of
        an object); a mask where nothing is stored is refused, naming its path."""
        kept = {}
        for key, value in given.items():
            child = self.shape.child(key) if self.shape is not None else None
            try:
                kept[key] = keep_secrets(value, stored.get(key, ABSENT), child, key)
            except MaskWithoutSecret as error:
                raise BadUserInput.from_problems("configuration", [error.problem]) from None
        return kept

    def validated(self, config: Mapping[str, Any], what: str = "configuration") -> dict[str, Any]:
        problems = validate_config(self.schema, config)
        if problems:
            raise BadUserInput.from_problems(what, problems)
        return dict(config)

    @property
    def keys(self) -> set[str]:
        return set((self.schema.get("properties") or {}).keys())


def migrate_config(
    config: Mapping[str, Any], old: PluginSchema, new: PluginSchema
) -> dict[str, Any]:
    """The configuration for another version: keys it no longer declares dropped, its new
    defaults filled in; values the admin set are kept (the caller validates the result)."""
    removed = old.keys - new.keys
    kept = {key: value for key, value in config.items() if key not in removed}
    return {**new.defaults, **kept}


class Installer:
    """The install-time services; one per process, holding the key that encrypts secrets."""

    def __init__(self, box: SecretBox) -> None:
        self._box = box
        self._apply: Apply | None = None
        self._code: PluginCode | None = None

    def load_code_with(self, code: PluginCode) -> None:
        """Have versions from index and git repositories downloaded and loaded by `code`."""
        self._code = code

    async def _prepare_code(self, name: str, catalog_plugin_id: int | None, version: str) -> None:
        """Download, unpack and load the version's code before any row says it is installed."""
        if self._code is None:
            return
        published = await PluginCode.published(catalog_plugin_id, version)
        if published is not None:
            await self._code.prepare(name, published)

    def apply_changes_with(self, apply: Apply) -> None:
        """Have `apply(name)` make the running plugins match each change (the plugin host)."""
        self._apply = apply

    async def _applied(self, plugin: InstalledPlugin) -> InstalledPlugin:
        if self._apply is not None:
            await self._apply(plugin.name)
            await plugin.refresh_from_db()
        return plugin

    def full_config(self, plugin: InstalledPlugin) -> dict[str, Any]:
        """The configuration with secrets decrypted, as the runtime hands it to the plugin."""
        return merge_secrets(plugin.config or {}, self._box.decrypt(plugin.secret_config))

    def secret_values(self, plugin: InstalledPlugin) -> dict[str, Any]:
        """The secret part of the configuration, decrypted: what the plugin's redactor hides."""
        return self._box.decrypt(plugin.secret_config)

    def visible_config(
        self, plugin: InstalledPlugin, manifest: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The configuration as clients see it: secrets that are set appear masked, at any
        depth; whatever is stored encrypted is masked even where the schema is silent."""
        stored = mask_leaves(self._box.decrypt(plugin.secret_config))
        shown = merge_secrets(plugin.config or {}, stored)
        return mask_secrets(shown, PluginSchema.of(manifest).shape)

    def split(
        self, config: Mapping[str, Any], shape: SecretShape | None
    ) -> tuple[dict[str, Any], str | None]:
        """(public configuration, its secret values encrypted, or None when it has none)."""
        public, hidden = split_secrets(config, shape)
        return public, self._box.encrypt(hidden) if hidden else None

    async def install(
        self,
        catalog_plugin_id: int,
        config: Mapping[str, Any] | None,
        *,
        enable: bool,
        installed_by: str,
        install_dependencies: bool = False,
        settings: Mapping[str, Any] | None = None,
    ) -> InstalledPlugin:
        """Install the catalog entry's newest version; `settings` overrides the manifest's
        run settings (`concurrency`, `timeoutSeconds`) for this installation."""
        overrides = run_settings.override(run_settings.RunSettings(), settings or {})
        entry = await CatalogPlugin.get_or_none(id=catalog_plugin_id)
        if entry is None:
            raise NotFound(f"catalog plugin {catalog_plugin_id} does not exist")
        return await self._install(
            entry,
            entry.version,
            config,
            enable=enable,
            installed_by=installed_by,
            install_dependencies=install_dependencies,
            chain=(),
            overrides=overrides,
        )

    async def _install(
        self,
        entry: CatalogPlugin,
        version: str,
        config: Mapping[str, Any] | None,
        *,
        enable: bool,
        installed_by: str,
        install_dependencies: bool,
        chain: tuple[str, ...],
        overrides: run_settings.RunSettings | None = None,
    ) -> InstalledPlugin:
        overrides = overrides or run_settings.RunSettings()
        if not entry.available:
            raise Conflict(f"{entry.name} is no longer offered by its repository")
        if await InstalledPlugin.exists(name=entry.name):
            raise Conflict(f"{entry.name} is installed already: use updatePlugin or upgradePlugin")
        _check_size(config)
        published = await PluginVersion.filter(plugin_id=entry.id, version=version).first()
        manifest = dict(published.manifest) if published is not None else dict(entry.manifest)
        plugin_schema = PluginSchema.of(manifest)
        given = plugin_schema.kept(config or {}, {})
        merged = plugin_schema.validated({**plugin_schema.defaults, **given})
        public, hidden = self.split(merged, plugin_schema.shape)
        check_requirements(entry.name, manifest)
        # Unmet dependencies are refused before anything is downloaded.
        await _refuse_unmet(entry.name, manifest, install_dependencies)
        try:
            await self._prepare_code(entry.name, entry.id, version)
            await self._resolve_dependencies(
                entry.name,
                manifest,
                enable=enable,
                installed_by=installed_by,
                install_dependencies=install_dependencies,
                chain=(*chain, entry.name),
            )
            async with in_transaction():
                installed = await InstalledPlugin.create(
                    catalog_plugin_id=entry.id,
                    name=entry.name,
                    version=version,
                    enabled=enable,
                    status=PluginStatus.INSTALLED,
                    config=public,
                    secret_config=hidden,
                    installed_by=installed_by,
                    concurrency=overrides.concurrency,
                    timeout_seconds=overrides.timeout_seconds,
                )
                await CatalogPlugin.filter(id=entry.id).update(install_count=F("install_count") + 1)
                await PluginStats.filter(plugin_id=entry.id).update(
                    last_installed_at=datetime.now(UTC)
                )
        except IntegrityError:
            raise Conflict(f"{entry.name} is installed already") from None
        except BaseException:
            # A refused install leaves no files or loaded class behind (unless another
            # request installed the plugin meanwhile).
            if self._code is not None and not await InstalledPlugin.exists(name=entry.name):
                self._code.keep_only(entry.name, set())
            raise
        return await self._applied(installed)

    async def _resolve_dependencies(
        self,
        name: str,
        manifest: Mapping[str, Any],
        *,
        enable: bool,
        installed_by: str,
        install_dependencies: bool,
        chain: tuple[str, ...],
    ) -> None:
        """Refuse unmet dependencies, naming them, or install them first when asked to."""
        problems = await _refuse_unmet(name, manifest, install_dependencies)
        for problem in problems:
            if problem.name in chain:
                raise Conflict(f"dependency cycle: {' -> '.join((*chain, problem.name))}")
            entry, version = await _offer_for(problem.name, problem.specifier)
            await self._install(
                entry,
                version,
                None,
                enable=enable,
                installed_by=installed_by,
                install_dependencies=True,
                chain=chain,
            )
        if enable:
            # Enabling follows the dependency graph: what this plugin needs runs first.
            for dependency in dependencies_of(manifest):
                row = await InstalledPlugin.get_or_none(name=dependency)
                if row is not None and not row.enabled:
                    await self.update(row.id, None, True)

    async def update(
        self,
        plugin_id: int,
        config: Mapping[str, Any] | None,
        enabled: bool | None,
        settings: Mapping[str, Any] | None = None,
    ) -> InstalledPlugin:
        """Merge `config` into the stored configuration, change the run settings and/or
        switch the plugin on or off.

        A key left out keeps its value and a key set to null returns to its default. Within a
        value sent, a secret holding the mask it was shown, or left out of an object, keeps
        its stored value (array items by position, while the array keeps its length).
        """
        plugin = await get_installed(plugin_id)
        if settings is not None:
            changed = run_settings.override(overrides_of(plugin), settings)
            plugin.concurrency = changed.concurrency
            plugin.timeout_seconds = changed.timeout_seconds
        if config is not None:
            _check_size(config)
            manifest = await manifest_of(plugin)
            plugin_schema = PluginSchema.of(manifest)
            current = self.full_config(plugin)
            merged = dict(current)
            given = {key: value for key, value in config.items() if value is not None}
            for key in config.keys() - given.keys():
                merged.pop(key, None)
                if key in plugin_schema.defaults:
                    merged[key] = plugin_schema.defaults[key]
            merged.update(plugin_schema.kept(given, current))
            public, hidden = self.split(plugin_schema.validated(merged), plugin_schema.shape)
            plugin.update_from_dict({"config": public, "secret_config": hidden})
        if enabled is not None and enabled != plugin.enabled:
            if enabled:
                await self._resolve_dependencies(
                    plugin.name,
                    await manifest_of(plugin),
                    enable=True,
                    installed_by=plugin.installed_by or "",
                    install_dependencies=False,
                    chain=(plugin.name,),
                )
            else:
                users = await dependents(plugin.name, enabled_only=True)
                if users:
                    raise Conflict(
                        f"{plugin.name} cannot be disabled: enabled plugins depend on it: "
                        + ", ".join(users)
                    )
            # Only a change of state resets the status; the host reports what the plugin does.
            plugin.enabled = enabled
            plugin.status = PluginStatus.INSTALLED if enabled else PluginStatus.DISABLED
        await plugin.save()
        return await self._applied(plugin)

    async def upgrade(self, plugin_id: int, version: str | None = None) -> InstalledPlugin:
        """Move to `version` (the newest offered when None), migrating the configuration.

        Nothing changes when the configuration does not fit the new version, its dependencies
        or requirements are unmet, or its code cannot be loaded: the old version keeps running.
        """
        plugin = await get_installed(plugin_id)
        if plugin.catalog_plugin_id is None:
            raise BadUserInput(f"{plugin.name} was not installed from a repository")
        offered = sorted(
            await PluginVersion.filter(plugin_id=plugin.catalog_plugin_id),
            key=lambda row: version_key(row.version),
        )
        if not offered:
            raise NotFound(f"the repository offers no versions of {plugin.name}")
        target = offered[-1] if version is None else _find(offered, version, plugin.name)
        if target.version == plugin.version:
            raise Conflict(f"{plugin.name} is at {plugin.version} already")
        manifest = dict(target.manifest)
        problems = await unmet(dependencies_of(manifest))
        if problems:
            listed = ", ".join(problem.describe() for problem in problems)
            raise Conflict(f"{plugin.name} {target.version} needs: {listed}")
        await _check_dependents_accept(plugin.name, target.version)
        check_requirements(plugin.name, manifest)
        old_schema = PluginSchema.of(await manifest_of(plugin))
        new_schema = PluginSchema.of(manifest)
        migrated = new_schema.validated(
            migrate_config(self.full_config(plugin), old_schema, new_schema),
            f"the configuration for {plugin.name} {target.version}",
        )
        await self._prepare_code(plugin.name, plugin.catalog_plugin_id, target.version)
        public, hidden = self.split(migrated, new_schema.shape)
        plugin.update_from_dict(
            {
                "previous_version": plugin.version,
                "previous_config": plugin.config,
                "previous_secret_config": plugin.secret_config,
                "version": target.version,
                "config": public,
                "secret_config": hidden,
            }
        )
        await plugin.save()
        return await self._applied(plugin)

    async def rollback(self, plugin_id: int) -> InstalledPlugin:
        """Return to the version before the last upgrade with the configuration it had.

        The version rolled back from becomes the previous one, so a rollback can be undone.
        """
        plugin = await get_installed(plugin_id)
        if not plugin.previous_version:
            raise Conflict(f"{plugin.name} has no previous version to roll back to")
        await _check_dependents_accept(plugin.name, plugin.previous_version)
        await self._prepare_code(plugin.name, plugin.catalog_plugin_id, plugin.previous_version)
        plugin.update_from_dict(
            {
                "previous_version": plugin.version,
                "previous_config": plugin.config,
                "previous_secret_config": plugin.secret_config,
                "version": plugin.previous_version,
                "config": plugin.previous_config or {},
                "secret_config": plugin.previous_secret_config,
            }
        )
        await plugin.save()
        return await self._applied(plugin)

    async def uninstall(self, plugin_id: int) -> int:
        plugin = await get_installed(plugin_id)
        users = await dependents(plugin.name)
        if users:
            raise Conflict(
                f"{plugin.name} cannot be uninstalled: installed plugins depend on it: "
                + ", ".join(users)
            )
        await plugin.delete()
        if self._apply is not None:
            await self._apply(plugin.name)  # the host unloads it and removes its files
        elif self._code is not None:
            self._code.keep_only(plugin.name, set())
        return plugin_id


async def _refuse_unmet(
    name: str, manifest: Mapping[str, Any], install_dependencies: bool
) -> list[Unmet]:
    """The dependencies to install; refused (each named) when they cannot or may not be."""
    problems = await unmet(dependencies_of(manifest))
    wrong = [problem for problem in problems if problem.installed is not None]
    if wrong:
        listed = ", ".join(problem.describe() for problem in wrong)
        raise Conflict(f"{name} needs other versions of installed plugins: {listed}")
    if problems and not install_dependencies:
        listed = ", ".join(problem.describe() for problem in problems)
        raise BadUserInput(
            f"{name} needs plugins that are not installed: {listed}; install them first "
            "or pass installDependencies: true"
        )
    return problems


async def _offer_for(name: str, specifier: str) -> tuple[CatalogPlugin, str]:
    """The catalog entry and its newest version that satisfy a dependency."""
    wanted = specifier_of(name, specifier)
    for entry in await CatalogPlugin.filter(name=name, available=True).order_by("id"):
        versions = await PluginVersion.filter(plugin_id=entry.id).values_list("version", flat=True)
        fitting = sorted((str(v) for v in versions if satisfies(str(v), wanted)), key=version_key)
        if fitting:
            return entry, fitting[-1]
    raise BadUserInput(f"no repository offers {name} {specifier}".rstrip())


def _find(offered: list[PluginVersion], version: str, name: str) -> PluginVersion:
    for row in offered:
        if row.version == version:
            return row
    listed = ", ".join(row.version for row in offered)
    raise BadUserInput(f"{name} has no version {version} (offered: {listed})")


async def dependents(name: str, *, enabled_only: bool = False) -> list[str]:
    """Installed plugins whose installed version depends on `name`, by name."""
    query = InstalledPlugin.exclude(name=name)
    if enabled_only:
        query = query.filter(enabled=True)
    users = []
    for row in await query.order_by("name"):
        if name in dependencies_of(await manifest_of(row)):
            users.append(row.name)
    return users


async def _check_dependents_accept(name: str, version: str) -> None:
    """Refuse a version that a plugin depending on `name` does not accept."""
    refusing = []
    for user in await dependents(name):
        row = await InstalledPlugin.get(name=user)
        wanted = dependencies_of(await manifest_of(row))[name]
        if not satisfies(version, specifier_of(name, wanted)):
            refusing.append(f"{user} ({name} {wanted})")
    if refusing:
        raise Conflict(
            f"{name} {version} does not fit plugins depending on it: " + ", ".join(refusing)
        )


def _check_size(config: Mapping[str, Any] | None) -> None:
    if config is not None and len(orjson.dumps(dict(config))) > MAX_CONFIG_BYTES:
        raise BadUserInput(
            f"configuration is larger than {MAX_CONFIG_BYTES} bytes",
            [FieldProblem("", f"larger than {MAX_CONFIG_BYTES} bytes")],
        )


def overrides_of(plugin: InstalledPlugin) -> run_settings.RunSettings:
    """The run settings an admin set on this installation (None where the manifest rules)."""
    return run_settings.RunSettings(plugin.concurrency, plugin.timeout_seconds)


async def get_installed(plugin_id: int | None = None, name: str | None = None) -> InstalledPlugin:
    if plugin_id is None and name is None:
        raise BadUserInput("give the installed plugin's id or name")
    query = (
        InstalledPlugin.filter(id=plugin_id)
        if plugin_id is not None
        else InstalledPlugin.filter(name=name)
    )
    plugin = await query.first()
    if plugin is None:
        raise NotFound(
            f"installed plugin {plugin_id if plugin_id is not None else name} does not exist"
        )
    return plugin


async def manifest_of(plugin: InstalledPlugin) -> dict[str, Any]:
    """The manifest of the installed version, falling back to the catalog entry's."""
    if plugin.catalog_plugin_id is None:
        return {}
    version = await PluginVersion.filter(
        plugin_id=plugin.catalog_plugin_id, version=plugin.version
    ).first()
    if version is not None:
        return dict(version.manifest)
    entry = await CatalogPlugin.get_or_none(id=plugin.catalog_plugin_id)
    return dict(entry.manifest) if entry else {}

"""Installing, configuring, enabling, disabling and uninstalling plugins.

Configuration is validated against the manifest's schema before anything is written; secret
values are encrypted into their own column and never leave the server again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from models import CatalogPlugin, InstalledPlugin, PluginStats, PluginVersion
from runtime.config_schema import (
    MASK,
    mask_secrets,
    normalise_schema,
    schema_defaults,
    secret_keys,
    validate_config,
)
from runtime.errors import BadUserInput, Conflict, FieldProblem, NotFound
from runtime.secrets import SecretBox

MAX_CONFIG_BYTES = 64 * 1024
Apply = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class PluginSchema:
    """What a plugin's manifest says about its configuration."""

    schema: dict[str, Any]
    defaults: dict[str, Any]

    @classmethod
    def of(cls, manifest: Mapping[str, Any]) -> PluginSchema:
        schema = normalise_schema(manifest.get("configSchema"))
        defaults = {**schema_defaults(schema), **dict(manifest.get("defaultConfig") or {})}
        return cls(schema=schema, defaults=defaults)

    @property
    def secrets(self) -> set[str]:
        return secret_keys(self.schema)

    def validated(self, config: Mapping[str, Any]) -> dict[str, Any]:
        problems = validate_config(self.schema, config)
        if problems:
            raise BadUserInput.from_problems("configuration", problems)
        return dict(config)


class Installer:
    """The install-time services; one per process, holding the key that encrypts secrets."""

    def __init__(self, box: SecretBox) -> None:
        self._box = box
        self._apply: Apply | None = None

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
        return {**plugin.config, **self._box.decrypt(plugin.secret_config)}

    def visible_config(
        self, plugin: InstalledPlugin, manifest: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The configuration as clients see it: secrets that are set appear masked."""
        secrets = PluginSchema.of(manifest).secrets
        stored = self._box.decrypt(plugin.secret_config)
        return {**plugin.config, **mask_secrets(stored, secrets)}

    def _split(
        self, config: Mapping[str, Any], secrets: set[str]
    ) -> tuple[dict[str, Any], str | None]:
        public = {k: v for k, v in config.items() if k not in secrets}
        hidden = {k: v for k, v in config.items() if k in secrets}
        return public, self._box.encrypt(hidden) if hidden else None

    async def install(
        self,
        catalog_plugin_id: int,
        config: Mapping[str, Any] | None,
        *,
        enable: bool,
        installed_by: str,
    ) -> InstalledPlugin:
        entry = await CatalogPlugin.get_or_none(id=catalog_plugin_id)
        if entry is None:
            raise NotFound(f"catalog plugin {catalog_plugin_id} does not exist")
        if not entry.available:
            raise Conflict(f"{entry.name} is no longer offered by its repository")
        if await InstalledPlugin.exists(name=entry.name):
            raise Conflict(f"{entry.name} is installed already: use updatePlugin or upgradePlugin")
        _check_size(config)
        plugin_schema = PluginSchema.of(entry.manifest)
        merged = plugin_schema.validated({**plugin_schema.defaults, **dict(config or {})})
        public, hidden = self._split(merged, plugin_schema.secrets)
        try:
            async with in_transaction():
                installed = await InstalledPlugin.create(
                    catalog_plugin_id=entry.id,
                    name=entry.name,
                    version=entry.version,
                    enabled=enable,
                    status="INSTALLED",
                    config=public,
                    secret_config=hidden,
                    installed_by=installed_by,
                )
                await CatalogPlugin.filter(id=entry.id).update(install_count=F("install_count") + 1)
                await PluginStats.filter(plugin_id=entry.id).update(
                    last_installed_at=datetime.now(UTC)
                )
        except IntegrityError:
            raise Conflict(f"{entry.name} is installed already") from None
        return await self._applied(installed)

    async def update(
        self, plugin_id: int, config: Mapping[str, Any] | None, enabled: bool | None
    ) -> InstalledPlugin:
        """Merge `config` into the stored configuration and/or switch the plugin on or off.

        A key set to null returns to its default; a secret left out keeps its value.
        """
        plugin = await get_installed(plugin_id)
        if config is not None:
            _check_size(config)
            manifest = await manifest_of(plugin)
            plugin_schema = PluginSchema.of(manifest)
            merged = {**self.full_config(plugin)}
            for key, value in config.items():
                if key in plugin_schema.secrets and value == MASK:
                    # A form sends back the mask it was shown: the secret stays as it was.
                    continue
                if value is None:
                    merged.pop(key, None)
                    if key in plugin_schema.defaults:
                        merged[key] = plugin_schema.defaults[key]
                else:
                    merged[key] = value
            public, hidden = self._split(plugin_schema.validated(merged), plugin_schema.secrets)
            plugin.update_from_dict({"config": public, "secret_config": hidden})
        if enabled is not None:
            plugin.enabled = enabled
            plugin.status = "INSTALLED" if enabled else "DISABLED"
        await plugin.save()
        return await self._applied(plugin)

    async def uninstall(self, plugin_id: int) -> int:
        plugin = await get_installed(plugin_id)
        await plugin.delete()
        if self._apply is not None:
            await self._apply(plugin.name)
        return plugin_id


def _check_size(config: Mapping[str, Any] | None) -> None:
    if config is not None and len(orjson.dumps(dict(config))) > MAX_CONFIG_BYTES:
        raise BadUserInput(
            f"configuration is larger than {MAX_CONFIG_BYTES} bytes",
            [FieldProblem("", f"larger than {MAX_CONFIG_BYTES} bytes")],
        )


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

"""Installed plugins: what an admin installed, its configuration and its state."""

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from models.catalog import CatalogPlugin


class InstalledPlugin(Model):
    """A plugin installed on this server.

    config holds the non-secret values; secret values live encrypted in secret_config, so a
    dump of the table never shows a password.
    """

    id = fields.IntField(primary_key=True)
    catalog_plugin: fields.ForeignKeyNullableRelation["CatalogPlugin"] = fields.ForeignKeyField(
        "models.CatalogPlugin",
        related_name="installations",
        null=True,
        on_delete=fields.SET_NULL,
    )
    catalog_plugin_id: int | None
    name = fields.CharField(max_length=255, unique=True)
    version = fields.CharField(max_length=50)
    enabled = fields.BooleanField(default=False)
    # A runtime.catalog.installs.PluginStatus, kept as its text: models imports nothing of ours.
    status = fields.CharField(max_length=20, default="INSTALLED")
    config: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    secret_config = fields.TextField(null=True)
    installed_by = fields.CharField(max_length=255, null=True)
    last_error = fields.TextField(null=True)
    # What rollbackPlugin returns to: the version before the last upgrade and its configuration.
    previous_version = fields.CharField(max_length=50, null=True)
    previous_config: fields.JSONField[dict[str, Any]] = fields.JSONField(null=True)
    previous_secret_config = fields.TextField(null=True)
    # An admin's override of the manifest's run settings; null: the manifest's or the default.
    concurrency = fields.IntField(null=True)
    timeout_seconds = fields.FloatField(null=True)
    installed_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "installed_plugins"

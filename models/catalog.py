"""The plugin catalog: entries, their versions, tags and view statistics."""

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from models.repository import Repository


class CatalogPlugin(Model):
    """One plugin offered by one repository: version is the newest the repository offers.

    The row keeps its id, ratings and counters across repository syncs; a plugin gone from its
    repository is marked available = False rather than deleted.
    """

    id = fields.IntField(primary_key=True)
    repository: fields.ForeignKeyRelation["Repository"] = fields.ForeignKeyField(
        "models.Repository", related_name="plugins", on_delete=fields.CASCADE
    )
    repository_id: int
    name = fields.CharField(max_length=255)
    version = fields.CharField(max_length=50)
    display_name = fields.CharField(max_length=255, null=True)
    description = fields.TextField(null=True)
    category = fields.CharField(max_length=100, null=True)
    plugin_type = fields.CharField(max_length=50, null=True)
    icon_url = fields.TextField(null=True)
    manifest: fields.JSONField[Any] = fields.JSONField(default=dict)
    tags: fields.JSONField[list[str]] = fields.JSONField(default=list)
    install_count = fields.IntField(default=0)
    avg_rating = fields.FloatField(default=0)
    rating_count = fields.IntField(default=0)
    available = fields.BooleanField(default=True)
    search_text = fields.TextField(default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "catalog_plugins"
        unique_together = (("repository", "name"),)
        # One per catalog sort: a page walks its index in order and stops after `first` rows
        # instead of sorting every match.
        indexes = (
            ("available", "install_count", "id"),
            ("available", "avg_rating", "rating_count", "id"),
            ("available", "created_at", "id"),
            ("available", "name", "id"),
        )


class CatalogTag(Model):
    """One tag of a catalog entry: a portable index for tag filters (JSON contains is not)."""

    id = fields.IntField(primary_key=True)
    plugin: fields.ForeignKeyRelation[CatalogPlugin] = fields.ForeignKeyField(
        "models.CatalogPlugin", related_name="tag_rows", on_delete=fields.CASCADE
    )
    plugin_id: int
    tag = fields.CharField(max_length=100, db_index=True)

    class Meta:
        table = "catalog_plugin_tags"
        unique_together = (("plugin", "tag"),)


class PluginVersion(Model):
    """One published version of a catalog entry, with what is needed to fetch it."""

    id = fields.IntField(primary_key=True)
    plugin: fields.ForeignKeyRelation[CatalogPlugin] = fields.ForeignKeyField(
        "models.CatalogPlugin", related_name="versions", on_delete=fields.CASCADE
    )
    plugin_id: int
    version = fields.CharField(max_length=50)
    manifest: fields.JSONField[Any] = fields.JSONField(default=dict)
    archive_url = fields.TextField(null=True)
    sha256 = fields.CharField(max_length=64, null=True)
    published_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "plugin_versions"
        unique_together = (("plugin", "version"),)


class PluginStats(Model):
    """View statistics of a catalog entry, kept apart so counting a view never locks the entry."""

    plugin: fields.OneToOneRelation[CatalogPlugin] = fields.OneToOneField(
        "models.CatalogPlugin", related_name="stats", on_delete=fields.CASCADE, primary_key=True
    )
    plugin_id: int
    view_count = fields.IntField(default=0)
    last_viewed_at = fields.DatetimeField(null=True)
    last_installed_at = fields.DatetimeField(null=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "plugin_stats"

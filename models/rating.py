"""User ratings and reviews of catalog entries."""

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from models.catalog import CatalogPlugin


class PluginRating(Model):
    """One user's rating (1..5) and optional review of one catalog entry."""

    id = fields.IntField(primary_key=True)
    plugin: fields.ForeignKeyRelation["CatalogPlugin"] = fields.ForeignKeyField(
        "models.CatalogPlugin", related_name="ratings", on_delete=fields.CASCADE
    )
    plugin_id: int
    user_id = fields.CharField(max_length=255)
    rating = fields.SmallIntField()
    review = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "plugin_ratings"
        unique_together = (("plugin", "user_id"),)

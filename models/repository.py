"""Plugin repositories: where catalog entries come from."""

from tortoise import fields
from tortoise.models import Model


class Repository(Model):
    """A source of plugins: an index URL, a git URL, or the built-in plugins."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=255, unique=True)
    # Without credentials: a user name and password given in the URL are in `credentials`.
    url = fields.TextField()
    type = fields.CharField(max_length=20, default="index")
    description = fields.TextField(null=True)
    enabled = fields.BooleanField(default=True)
    last_synced_at = fields.DatetimeField(null=True)
    last_sync_error = fields.TextField(null=True)
    # The URL's user name and password, encrypted (runtime.core.secrets.SecretBox); null without.
    credentials = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "repositories"

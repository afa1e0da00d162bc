"""Broadcast payloads too large for a PostgreSQL NOTIFY, sent by reference."""

from tortoise import fields
from tortoise.models import Model


class BroadcastPayload(Model):
    """A message body the PostgreSQL broadcast backend sent as its row id."""

    id = fields.BigIntField(primary_key=True)
    channel = fields.CharField(max_length=100)
    payload = fields.TextField()
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "broadcast_payloads"

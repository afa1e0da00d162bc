"""Events, their deliveries to plugins, plugin logs and plugin storage."""

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from tortoise.fields.relational import ReverseRelation


# The stored row; the event a plugin receives is runtime.sdk.Event, the API's is graph's Event.
class EventRow(Model):
    """Something that happened on the platform, as emitEvent accepted it."""

    id = fields.BigIntField(primary_key=True)
    type = fields.CharField(max_length=200, db_index=True)
    payload: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    idempotency_key = fields.CharField(max_length=255, null=True, unique=True)
    occurred_at = fields.DatetimeField()
    received_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    deliveries: "ReverseRelation[Delivery]"

    class Meta:
        table = "events"


class Delivery(Model):
    """One event handed to one plugin: the unit of retry, timeout and outcome.

    A claimed delivery is RUNNING with a lease. A lease that ran out means its process died,
    and the delivery may be claimed again.
    """

    id = fields.BigIntField(primary_key=True)
    event: fields.ForeignKeyRelation[EventRow] = fields.ForeignKeyField(
        "models.EventRow", related_name="deliveries", on_delete=fields.CASCADE
    )
    event_id: int
    plugin = fields.CharField(max_length=255)
    hook = fields.CharField(max_length=100)
    # A runtime.sdk.outcomes.DeliveryStatus, kept as its text: models imports nothing of ours.
    status = fields.CharField(max_length=20, default="PENDING")
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField()
    lease_expires_at = fields.DatetimeField(null=True)
    duration_ms = fields.FloatField(null=True)
    result: fields.JSONField[Any] = fields.JSONField(null=True)
    error = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "deliveries"
        # By event: an event's outcomes, duplicates, retention and the cascade from events.
        indexes = (("status", "plugin", "next_attempt_at"), ("event_id",))


class PluginLog(Model):
    """One line a plugin logged through its context."""

    id = fields.BigIntField(primary_key=True)
    plugin = fields.CharField(max_length=255)
    level = fields.CharField(max_length=10)
    message = fields.TextField()
    data: fields.JSONField[Any] = fields.JSONField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "plugin_logs"
        indexes = (("plugin", "id"),)


class PluginStorage(Model):
    """A plugin's own key-value store, scoped by plugin name."""

    id = fields.IntField(primary_key=True)
    plugin = fields.CharField(max_length=255)
    key = fields.CharField(max_length=255)
    value: fields.JSONField[Any] = fields.JSONField(null=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "plugin_storage"
        unique_together = (("plugin", "key"),)

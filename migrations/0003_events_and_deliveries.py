from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0002_catalog_search')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Event',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('type', fields.CharField(db_index=True, max_length=200)),
                ('payload', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('idempotency_key', fields.CharField(null=True, unique=True, max_length=255)),
                ('occurred_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('received_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'events', 'app': 'models', 'pk_attr': 'id', 'table_description': 'Something that happened on the platform, as emitEvent accepted it.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Delivery',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('event', fields.ForeignKeyField('models.Event', source_field='event_id', db_constraint=True, to_field='id', related_name='deliveries', on_delete=OnDelete.CASCADE)),
                ('plugin', fields.CharField(max_length=255)),
                ('hook', fields.CharField(max_length=100)),
                ('status', fields.CharField(default='PENDING', max_length=20)),
                ('attempts', fields.IntField(default=0)),
                ('next_attempt_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('lease_expires_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('duration_ms', fields.FloatField(null=True)),
                ('result', fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads)),
                ('error', fields.TextField(null=True, unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'deliveries', 'app': 'models', 'indexes': [Index(fields=['status', 'plugin', 'next_attempt_at'])], 'pk_attr': 'id', 'table_description': 'One event handed to one plugin: the unit of retry, timeout and outcome.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PluginLog',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('plugin', fields.CharField(max_length=255)),
                ('level', fields.CharField(max_length=10)),
                ('message', fields.TextField(unique=False)),
                ('data', fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'plugin_logs', 'app': 'models', 'indexes': [Index(fields=['plugin', 'id'])], 'pk_attr': 'id', 'table_description': 'One line a plugin logged through its context.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PluginStorage',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('plugin', fields.CharField(max_length=255)),
                ('key', fields.CharField(max_length=255)),
                ('value', fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'plugin_storage', 'app': 'models', 'unique_together': (('plugin', 'key'),), 'pk_attr': 'id', 'table_description': "A plugin's own key-value store, scoped by plugin name."},
            bases=['Model'],
        ),
    ]

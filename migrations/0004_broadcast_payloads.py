from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0003_events_and_deliveries')]

    initial = False

    operations = [
        ops.CreateModel(
            name='BroadcastPayload',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('channel', fields.CharField(max_length=100)),
                ('payload', fields.TextField(unique=False)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'broadcast_payloads', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A message body the PostgreSQL broadcast backend sent as its row id.'},
            bases=['Model'],
        ),
    ]

from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0004_broadcast_payloads')]

    initial = False

    operations = [
        ops.AddField(
            model_name='InstalledPlugin',
            name='previous_config',
            field=fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads),
        ),
        ops.AddField(
            model_name='InstalledPlugin',
            name='previous_secret_config',
            field=fields.TextField(null=True, unique=False),
        ),
        ops.AddField(
            model_name='InstalledPlugin',
            name='previous_version',
            field=fields.CharField(null=True, max_length=50),
        ),
    ]

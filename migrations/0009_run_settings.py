from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0008_repository_credentials")]

    initial = False

    # Both null on existing rows: each installation keeps its manifest's settings.
    operations = [
        ops.AddField(
            model_name="InstalledPlugin",
            name="concurrency",
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name="InstalledPlugin",
            name="timeout_seconds",
            field=fields.FloatField(null=True),
        ),
    ]

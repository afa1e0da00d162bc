from tortoise import migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0006_catalog_sort_indexes")]

    initial = False

    operations = [
        ops.AddIndex(
            model_name="Delivery",
            index=Index(fields=["event_id"]),
        ),
    ]

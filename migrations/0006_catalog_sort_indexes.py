from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index


class Migration(migrations.Migration):
    dependencies = [("models", "0005_dynamic_plugins")]

    initial = False

    operations = [
        ops.AddIndex(
            model_name="CatalogPlugin",
            index=Index(fields=["available", "install_count", "id"]),
        ),
        ops.AddIndex(
            model_name="CatalogPlugin",
            index=Index(fields=["available", "avg_rating", "rating_count", "id"]),
        ),
        ops.AddIndex(
            model_name="CatalogPlugin",
            index=Index(fields=["available", "created_at", "id"]),
        ),
        ops.AddIndex(
            model_name="CatalogPlugin",
            index=Index(fields=["available", "name", "id"]),
        ),
    ]

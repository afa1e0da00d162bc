from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0009_run_settings")]

    initial = False

    # The model's name only: its table stays "events", so the database does not change.
    operations = [
        ops.RenameModel(old_name="Event", new_name="EventRow"),
    ]

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields


class AddFieldWithDatabaseDefault(ops.AddField):
    """AddField whose column carries a database default, so tables with rows accept it.

    The generated ALTER TABLE adds NOT NULL columns without a DEFAULT clause, which PostgreSQL
    refuses on a table that already has rows.
    """

    def __init__(self, model_name, name, field, column_sql) -> None:
        super().__init__(model_name=model_name, name=name, field=field)
        self.column_sql = column_sql

    async def database_forward(self, app_label, old_state, new_state, state_editor=None) -> None:
        if state_editor is None:
            return
        table = self.get_model_state(new_state, app_label, self.model_name).options["table"]
        await state_editor.client.execute_script(
            f'ALTER TABLE "{table}" ADD COLUMN "{self.name}" {self.column_sql}'
        )


async def index_existing_entries(apps, schema_editor) -> None:
    """Fill the search text and tag rows of entries created before this migration.

    The rule is frozen here as it was when this migration was written; later changes to how the
    catalog indexes entries must not rewrite history.
    """
    catalog_plugin = apps.get_model("models", "CatalogPlugin")
    catalog_tag = apps.get_model("models", "CatalogTag")
    for entry in await catalog_plugin.all():
        tags = [str(tag) for tag in entry.tags or []]
        parts = [entry.name, entry.display_name or "", entry.description or "", *tags]
        entry.search_text = "\n".join(parts).lower()
        await entry.save(update_fields=["search_text"])
        for tag in sorted(set(tags)):
            await catalog_tag.create(plugin_id=entry.id, tag=tag)


class Migration(migrations.Migration):
    dependencies = [('models', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='CatalogTag',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('plugin', fields.ForeignKeyField('models.CatalogPlugin', source_field='plugin_id', db_constraint=True, to_field='id', related_name='tag_rows', on_delete=OnDelete.CASCADE)),
                ('tag', fields.CharField(db_index=True, max_length=100)),
            ],
            options={'table': 'catalog_plugin_tags', 'app': 'models', 'unique_together': (('plugin', 'tag'),), 'pk_attr': 'id', 'table_description': 'One tag of a catalog entry: a portable index for tag filters (JSON contains is not).'},
            bases=['Model'],
        ),
        AddFieldWithDatabaseDefault(
            model_name='CatalogPlugin',
            name='available',
            field=fields.BooleanField(default=True),
            column_sql="BOOLEAN NOT NULL DEFAULT TRUE",
        ),
        AddFieldWithDatabaseDefault(
            model_name='CatalogPlugin',
            name='search_text',
            field=fields.TextField(default='', unique=False),
            column_sql="TEXT NOT NULL DEFAULT ''",
        ),
        ops.AlterModelOptions(
            name='PluginStats',
            options={'table': 'plugin_stats', 'app': 'models', 'pk_attr': 'plugin_id', 'table_description': 'View statistics of a catalog entry, kept apart so counting a view never locks the entry.'},
        ),
        ops.AddField(
            model_name='Repository',
            name='last_sync_error',
            field=fields.TextField(null=True, unique=False),
        ),
        ops.AddField(
            model_name='Repository',
            name='last_synced_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.RunPython(index_existing_entries),
    ]

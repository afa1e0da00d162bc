from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Repository',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(unique=True, max_length=255)),
                ('url', fields.TextField(unique=False)),
                ('type', fields.CharField(default='index', max_length=20)),
                ('description', fields.TextField(null=True, unique=False)),
                ('enabled', fields.BooleanField(default=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'repositories', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A source of plugins: an index URL, a git URL, or the built-in plugins.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CatalogPlugin',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('repository', fields.ForeignKeyField('models.Repository', source_field='repository_id', db_constraint=True, to_field='id', related_name='plugins', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(max_length=255)),
                ('version', fields.CharField(max_length=50)),
                ('display_name', fields.CharField(null=True, max_length=255)),
                ('description', fields.TextField(null=True, unique=False)),
                ('category', fields.CharField(null=True, max_length=100)),
                ('plugin_type', fields.CharField(null=True, max_length=50)),
                ('icon_url', fields.TextField(null=True, unique=False)),
                ('manifest', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('tags', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('install_count', fields.IntField(default=0)),
                ('avg_rating', fields.FloatField(default=0)),
                ('rating_count', fields.IntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'catalog_plugins', 'app': 'models', 'unique_together': (('repository', 'name'),), 'pk_attr': 'id', 'table_description': 'One plugin offered by one repository: version is the newest the repository offers.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='InstalledPlugin',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('catalog_plugin', fields.ForeignKeyField('models.CatalogPlugin', source_field='catalog_plugin_id', null=True, db_constraint=True, to_field='id', related_name='installations', on_delete=OnDelete.SET_NULL)),
                ('name', fields.CharField(unique=True, max_length=255)),
                ('version', fields.CharField(max_length=50)),
                ('enabled', fields.BooleanField(default=False)),
                ('status', fields.CharField(default='INSTALLED', max_length=20)),
                ('config', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('secret_config', fields.TextField(null=True, unique=False)),
                ('installed_by', fields.CharField(null=True, max_length=255)),
                ('last_error', fields.TextField(null=True, unique=False)),
                ('installed_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'installed_plugins', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A plugin installed on this server.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PluginRating',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('plugin', fields.ForeignKeyField('models.CatalogPlugin', source_field='plugin_id', db_constraint=True, to_field='id', related_name='ratings', on_delete=OnDelete.CASCADE)),
                ('user_id', fields.CharField(max_length=255)),
                ('rating', fields.SmallIntField()),
                ('review', fields.TextField(null=True, unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'plugin_ratings', 'app': 'models', 'unique_together': (('plugin', 'user_id'),), 'pk_attr': 'id', 'table_description': "One user's rating (1..5) and optional review of one catalog entry."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PluginStats',
            fields=[
                ('plugin', fields.OneToOneField('models.CatalogPlugin', source_field='plugin_id', primary_key=True, db_index=True, db_constraint=True, to_field='id', related_name='stats', on_delete=OnDelete.CASCADE)),
                ('view_count', fields.IntField(default=0)),
                ('last_viewed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_installed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'plugin_stats', 'app': 'models', 'pk_attr': 'plugin_id', 'table_description': 'View statistics of a catalog entry, kept apart so counting a view never locks the entry.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PluginVersion',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('plugin', fields.ForeignKeyField('models.CatalogPlugin', source_field='plugin_id', db_constraint=True, to_field='id', related_name='versions', on_delete=OnDelete.CASCADE)),
                ('version', fields.CharField(max_length=50)),
                ('manifest', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('archive_url', fields.TextField(null=True, unique=False)),
                ('sha256', fields.CharField(null=True, max_length=64)),
                ('published_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'plugin_versions', 'app': 'models', 'unique_together': (('plugin', 'version'),), 'pk_attr': 'id', 'table_description': 'One published version of a catalog entry, with what is needed to fetch it.'},
            bases=['Model'],
        ),
    ]

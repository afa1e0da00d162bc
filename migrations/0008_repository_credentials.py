import base64
from urllib.parse import unquote, urlsplit, urlunsplit

import orjson
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from tortoise import fields, migrations
from tortoise.migrations import operations as ops

from models.database import migration_secret_key

# runtime.core.secrets.SecretBox as it was when this migration was written: what it encrypts
# here, the server decrypts with the same key.
_INFO = b"streamspace-plugins config secrets v1"


def _seal(secret_key, values):
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived)).encrypt(orjson.dumps(values)).decode()


def _without_credentials(url):
    """(url without `user:pass@`, {"username", "password"} or None)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    values = {"username": unquote(username), "password": unquote(password)}
    return urlunsplit(parts._replace(netloc=host)), values


async def seal_url_credentials(apps, schema_editor) -> None:
    """Move credentials out of repository URLs into the encrypted column, and out of the
    archive URLs resolved against them. The rule is frozen here as it was written."""
    repository = apps.get_model("models", "Repository")
    version = apps.get_model("models", "PluginVersion")
    holding = []
    for row in await repository.all():
        public, values = _without_credentials(row.url)
        if values is not None:
            holding.append((row, public, values))
    if holding:
        secret_key = migration_secret_key()
        if not secret_key:
            raise RuntimeError(
                "repository URLs hold credentials, which this migration encrypts: "
                "run it with the server's secret key (STREAMSPACE_SECRET_KEY)"
            )
        for row, public, values in holding:
            row.url = public
            row.credentials = _seal(secret_key, values)
            await row.save(update_fields=["url", "credentials"])
    for row in await version.filter(archive_url__contains="@"):
        public, values = _without_credentials(row.archive_url)
        if values is not None:
            row.archive_url = public
            await row.save(update_fields=["archive_url"])


class Migration(migrations.Migration):
    dependencies = [("models", "0007_deliveries_by_event")]

    initial = False

    operations = [
        ops.AddField(
            model_name="Repository",
            name="credentials",
            field=fields.TextField(null=True, unique=False),
        ),
        ops.RunPython(seal_url_credentials),
    ]

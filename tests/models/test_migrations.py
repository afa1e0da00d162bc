"""Migrations upgrade an existing database with its data, on SQLite and on PostgreSQL.

Each test gets a database of its own: a fresh SQLite file, or a fresh PostgreSQL database created
and dropped by the test. Rows are written with raw SQL as a 0001-era server would have left them,
so the test depends on nothing but the tables 0001 created.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg
import pytest
from tortoise import Tortoise
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.migrations.autodetector import MigrationAutodetector

from models import (
    CatalogPlugin,
    CatalogTag,
    InstalledPlugin,
    PluginRating,
    PluginStats,
    PluginVersion,
    Repository,
    close_database,
    database_config,
    init_database,
    migrate_database,
)
from runtime.core.secrets import SecretBox
from tests.conftest import create_database, drop_database, require_postgres, run_apart

# Every migration in the project, in order; later ones are applied by the upgrade too.
ALL_MIGRATIONS = sorted(
    f"models.{path.stem}"
    for path in (Path(__file__).parents[2] / "migrations").glob("[0-9][0-9][0-9][0-9]_*.py")
)
MOMENT = datetime(2025, 6, 1, 12, 30, tzinfo=UTC)


@dataclass
class RawDatabase:
    """Raw SQL on either backend; statements are written with `?` placeholders."""

    backend: str
    url: str

    def _sql(self, sql: str) -> str:
        if self.backend == "sqlite":
            return sql
        parts = sql.split("?")
        return parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], 1))

    def _value(self, value: Any) -> Any:
        # Tortoise stores SQLite datetimes as ISO text with a space; asyncpg takes datetimes.
        if self.backend == "sqlite" and isinstance(value, datetime):
            return value.isoformat(" ")
        return value

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        values = [self._value(value) for value in args]
        if self.backend == "sqlite":
            async with aiosqlite.connect(self.url.removeprefix("sqlite://")) as connection:
                connection.row_factory = aiosqlite.Row
                async with connection.execute(self._sql(sql), values) as cursor:
                    rows = await cursor.fetchall()
                await connection.commit()
                return [dict(row) for row in rows]
        connection = await asyncpg.connect(self.url.replace("postgres://", "postgresql://", 1))
        try:
            return [dict(row) for row in await connection.fetch(self._sql(sql), *values)]
        finally:
            await connection.close()

    async def insert(self, table: str, **values: Any) -> int:
        """Insert one row and return its id (or plugin_id, for plugin_stats)."""
        key = "plugin_id" if table == "plugin_stats" else "id"
        columns = ", ".join(f'"{name}"' for name in values)
        marks = ", ".join("?" for _ in values)
        rows = await self.fetch(
            f'INSERT INTO "{table}" ({columns}) VALUES ({marks}) RETURNING "{key}"',
            *values.values(),
        )
        return int(rows[0][key])

    async def tables(self) -> set[str]:
        if self.backend == "sqlite":
            rows = await self.fetch("SELECT name FROM sqlite_master WHERE type = 'table'")
        else:
            rows = await self.fetch(
                "SELECT table_name AS name FROM information_schema.tables"
                " WHERE table_schema = 'public'"
            )
        return {row["name"] for row in rows}


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


async def _migrate(url: str, target: str | None = None, secret_key: str | None = None) -> list[str]:
    # Compiled statements are cached per connection name, not per dialect.
    EXECUTOR_CACHE.clear()
    return await migrate_database(url, target=target, secret_key=secret_key)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def raw(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RawDatabase]:
    """An empty database of this test's own, never migrated."""
    if request.param == "sqlite":
        yield RawDatabase("sqlite", f"sqlite://{tmp_path / 'upgrade.db'}")
        return
    require_postgres()
    name = f"ssp_migrations_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url = await create_database(name)
    try:
        yield RawDatabase("postgres", url)
    finally:
        await close_database()
        await drop_database(name)


@dataclass
class OldRows:
    repository: int
    slack: int
    bare: int
    installed: int


async def _write_0001_rows(db: RawDatabase) -> OldRows:
    """What a server at 0001 held: a repository, two entries, an install, ratings, stats."""
    common = {"created_at": MOMENT, "updated_at": MOMENT}
    repository = await db.insert(
        "repositories",
        name="official",
        url="https://plugins.example.com/",
        type="index",
        description="Official plugins",
        enabled=True,
        **common,
    )
    manifest = {"name": "streamspace-slack", "version": "1.2.0", "type": "webhook"}
    slack = await db.insert(
        "catalog_plugins",
        repository_id=repository,
        name="streamspace-slack",
        version="1.2.0",
        display_name="Slack Notifications",
        description="Posts Session Events to Slack",
        category="Integrations",
        plugin_type="webhook",
        icon_url="https://example.com/slack.png",
        manifest=json.dumps(manifest),
        tags=json.dumps(["Chat", "notifications", "Chat"]),
        install_count=3,
        avg_rating=4.5,
        rating_count=2,
        **common,
    )
    bare = await db.insert(
        "catalog_plugins",
        repository_id=repository,
        name="bare",
        version="0.1.0",
        manifest=json.dumps({}),
        tags=json.dumps([]),
        install_count=0,
        avg_rating=0.0,
        rating_count=0,
        **common,
    )
    installed = await db.insert(
        "installed_plugins",
        catalog_plugin_id=slack,
        name="streamspace-slack",
        version="1.2.0",
        enabled=True,
        status="ACTIVE",
        config=json.dumps({"channel": "#ops"}),
        secret_config="encrypted-blob",
        installed_by="admin",
        installed_at=MOMENT,
        updated_at=MOMENT,
    )
    for user, rating in (("alice", 5), ("bob", 4)):
        await db.insert(
            "plugin_ratings",
            plugin_id=slack,
            user_id=user,
            rating=rating,
            review=f"by {user}",
            **common,
        )
    await db.insert(
        "plugin_stats",
        plugin_id=slack,
        view_count=42,
        last_viewed_at=MOMENT,
        last_installed_at=MOMENT,
        updated_at=MOMENT,
    )
    for version in ("1.1.0", "1.2.0"):
        await db.insert(
            "plugin_versions",
            plugin_id=slack,
            version=version,
            manifest=json.dumps({**manifest, "version": version}),
            archive_url=f"https://plugins.example.com/streamspace-slack-{version}.tar.gz",
            sha256="a" * 64,
            published_at=MOMENT,
            created_at=MOMENT,
        )
    return OldRows(repository, slack, bare, installed)


def _names(rows: Sequence[dict[str, Any]], key: str) -> list[Any]:
    return sorted(row[key] for row in rows)


async def test_upgrade_from_0001_keeps_rows_and_indexes_the_catalog(raw: RawDatabase) -> None:
    assert await _migrate(raw.url, target="models.0001_initial") == ["models.0001_initial"]
    assert "catalog_plugin_tags" not in await raw.tables()
    old = await _write_0001_rows(raw)

    assert await _migrate(raw.url) == ALL_MIGRATIONS[1:]
    assert {"catalog_plugin_tags", "events", "deliveries"} <= await raw.tables()

    repositories = await raw.fetch("SELECT * FROM repositories WHERE id = ?", old.repository)
    assert repositories[0]["name"] == "official"
    assert repositories[0]["url"] == "https://plugins.example.com/"
    assert repositories[0]["last_synced_at"] is None
    assert repositories[0]["last_sync_error"] is None

    entries = {
        row["name"]: row for row in await raw.fetch("SELECT * FROM catalog_plugins ORDER BY id")
    }
    assert set(entries) == {"streamspace-slack", "bare"}
    slack = entries["streamspace-slack"]
    assert slack["id"] == old.slack
    assert slack["display_name"] == "Slack Notifications"
    assert _json(slack["tags"]) == ["Chat", "notifications", "Chat"]
    assert _json(slack["manifest"])["type"] == "webhook"
    assert (slack["install_count"], slack["rating_count"]) == (3, 2)
    assert slack["avg_rating"] == pytest.approx(4.5)
    # 0002's data migration, as the rule stood when it was written.
    assert bool(slack["available"]) is True
    assert slack["search_text"] == (
        "streamspace-slack\nslack notifications\nposts session events to slack\n"
        "chat\nnotifications\nchat"
    )
    assert entries["bare"]["search_text"] == "bare\n\n"
    assert bool(entries["bare"]["available"]) is True

    tags = await raw.fetch("SELECT plugin_id, tag FROM catalog_plugin_tags ORDER BY tag")
    assert [(row["plugin_id"], row["tag"]) for row in tags] == [
        (old.slack, "Chat"),
        (old.slack, "notifications"),
    ]

    installed = await raw.fetch("SELECT * FROM installed_plugins")
    assert len(installed) == 1
    assert installed[0]["id"] == old.installed
    assert installed[0]["catalog_plugin_id"] == old.slack
    assert _json(installed[0]["config"]) == {"channel": "#ops"}
    assert installed[0]["secret_config"] == "encrypted-blob"
    assert installed[0]["status"] == "ACTIVE"

    ratings = await raw.fetch("SELECT * FROM plugin_ratings WHERE plugin_id = ?", old.slack)
    assert _names(ratings, "user_id") == ["alice", "bob"]
    assert _names(ratings, "rating") == [4, 5]
    stats = await raw.fetch("SELECT * FROM plugin_stats")
    assert [(row["plugin_id"], row["view_count"]) for row in stats] == [(old.slack, 42)]
    versions = await raw.fetch("SELECT * FROM plugin_versions WHERE plugin_id = ?", old.slack)
    assert _names(versions, "version") == ["1.1.0", "1.2.0"]

    # The models of today read the old rows and write new ones beside them.
    EXECUTOR_CACHE.clear()
    await init_database(raw.url)
    try:
        entry = await CatalogPlugin.get(id=old.slack)
        assert entry.created_at == MOMENT
        assert entry.tags == ["Chat", "notifications", "Chat"]
        assert await CatalogTag.filter(tag="Chat").values_list("plugin_id", flat=True) == [
            old.slack
        ]
        assert (await InstalledPlugin.get(id=old.installed)).installed_at == MOMENT
        assert await PluginRating.filter(plugin_id=old.slack).count() == 2
        assert (await PluginStats.get(plugin_id=old.slack)).view_count == 42
        assert await PluginVersion.filter(plugin_id=old.slack).count() == 2
        repository = await Repository.get(id=old.repository)
        added = await CatalogPlugin.create(repository=repository, name="new", version="1.0.0")
        assert added.id not in {old.slack, old.bare}
        await CatalogTag.create(plugin=added, tag="Chat")
        assert await CatalogTag.filter(tag="Chat").count() == 2
    finally:
        await close_database()


async def test_migrating_twice_applies_nothing_the_second_time(raw: RawDatabase) -> None:
    assert await _migrate(raw.url) == ALL_MIGRATIONS
    assert await _migrate(raw.url) == []
    assert await _migrate(raw.url, target=ALL_MIGRATIONS[-1]) == []


PRIVATE_URL = "https://deploy:s3cret%2FPASS@git.example/plugins.git"


async def _write_0007_repositories(db: RawDatabase) -> tuple[int, int]:
    """A private repository (credentials in its URL) with a version, and a public one."""
    common = {"created_at": MOMENT, "updated_at": MOMENT, "enabled": True, "type": "index"}
    private = await db.insert("repositories", name="private", url=PRIVATE_URL, **common)
    public = await db.insert(
        "repositories", name="public", url="https://plugins.example/", **common
    )
    entry = await db.insert(
        "catalog_plugins",
        repository_id=private,
        name="greeter",
        version="1.0.0",
        manifest=json.dumps({}),
        tags=json.dumps([]),
        install_count=0,
        avg_rating=0.0,
        rating_count=0,
        available=True,
        search_text="greeter",
        created_at=MOMENT,
        updated_at=MOMENT,
    )
    await db.insert(
        "plugin_versions",
        plugin_id=entry,
        version="1.0.0",
        manifest=json.dumps({}),
        archive_url="https://deploy:s3cret%2FPASS@git.example/greeter-1.0.0.tar.gz",
        created_at=MOMENT,
    )
    return private, public


async def _all_text(db: RawDatabase) -> str:
    tables = ("repositories", "catalog_plugins", "plugin_versions")
    return repr([await db.fetch(f'SELECT * FROM "{table}"') for table in tables])


async def test_credentials_in_repository_urls_move_into_the_encrypted_column(
    raw: RawDatabase,
) -> None:
    await _migrate(raw.url, target="models.0007_deliveries_by_event")
    private, public = await _write_0007_repositories(raw)

    assert await _migrate(raw.url, secret_key="the server key") == [
        "models.0008_repository_credentials",
        *ALL_MIGRATIONS[8:],
    ]

    rows = {row["id"]: row for row in await raw.fetch("SELECT * FROM repositories")}
    assert rows[private]["url"] == "https://git.example/plugins.git"
    assert SecretBox("the server key").decrypt(rows[private]["credentials"]) == {
        "username": "deploy",
        "password": "s3cret/PASS",
    }
    assert (rows[public]["url"], rows[public]["credentials"]) == ("https://plugins.example/", None)
    [version] = await raw.fetch("SELECT archive_url FROM plugin_versions")
    assert version["archive_url"] == "https://git.example/greeter-1.0.0.tar.gz"
    assert "s3cret" not in await _all_text(raw)


async def test_without_the_secret_key_the_credentials_migration_changes_nothing(
    raw: RawDatabase,
) -> None:
    await _migrate(raw.url, target="models.0007_deliveries_by_event")
    private, _ = await _write_0007_repositories(raw)
    with pytest.raises(RuntimeError, match="STREAMSPACE_SECRET_KEY"):
        await _migrate(raw.url)
    [row] = await raw.fetch("SELECT * FROM repositories WHERE id = ?", private)
    assert row["url"] == PRIVATE_URL
    assert "credentials" not in row
    # Given the key, the same database migrates.
    assert "models.0008_repository_credentials" in await _migrate(raw.url, secret_key="k")


async def _pending_model_changes() -> list[str]:
    config = database_config("sqlite://:memory:")
    await Tortoise.init(config=config, init_connections=False)
    try:
        writers = await MigrationAutodetector(Tortoise.apps, config["apps"]).changes()
    finally:
        await Tortoise.close_connections()
    return [
        f"{type(operation).__name__} {getattr(operation, 'model_name', '')}"
        f" {getattr(operation, 'name', '')}".strip()
        for writer in writers
        for operation in writer.operations
    ]


def test_the_models_need_no_migration_the_project_lacks() -> None:
    pending = run_apart(_pending_model_changes())
    assert pending == [], (
        "the models differ from what the migrations build: run `tortoise makemigrations` "
        f"and review the new file; pending: {pending}"
    )


async def test_installations_before_run_settings_keep_their_manifests_settings(
    raw: RawDatabase,
) -> None:
    await _migrate(raw.url, target="models.0008_repository_credentials")
    old = await _write_0001_rows(raw)
    assert await _migrate(raw.url) == ["models.0009_run_settings", *ALL_MIGRATIONS[9:]]

    [row] = await raw.fetch("SELECT * FROM installed_plugins")
    assert (row["concurrency"], row["timeout_seconds"]) == (None, None)
    assert _json(row["config"]) == {"channel": "#ops"}
    EXECUTOR_CACHE.clear()
    await init_database(raw.url)
    try:
        installed = await InstalledPlugin.get(id=old.installed)
        assert (installed.concurrency, installed.timeout_seconds) == (None, None)
        installed.concurrency, installed.timeout_seconds = 2, 0.5
        await installed.save()
        again = await InstalledPlugin.get(id=old.installed)
        assert (again.concurrency, again.timeout_seconds) == (2, 0.5)
    finally:
        await close_database()

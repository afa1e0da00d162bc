"""Plugin repositories: adding, syncing index.json into the catalog, and removing them.

Runs on SQLite and PostgreSQL (the `db` fixture). Indexes are folders in tmp_path, read through
file:// URLs or served by a local aiohttp server on 127.0.0.1.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from tortoise.connection import get_connection

from models import (
    CatalogPlugin,
    CatalogTag,
    InstalledPlugin,
    PluginRating,
    PluginStats,
    PluginVersion,
    Repository,
)
from runtime import repositories
from runtime.errors import BadUserInput, Conflict
from runtime.repositories import (
    BUILTIN,
    RepositoryType,
    add_repository,
    remove_repository,
    sync_repository,
)
from tests.conftest import Database

SHA = "ab" * 32


def manifest(name: str, version: str = "1.0.0", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "displayName": name.title(),
        "description": f"{name} does things",
        "type": "webhook",
        "category": "notifications",
        "tags": ["alerts", name],
        "permissions": ["sessions:read"],
        "configSchema": {"webhookUrl": {"type": "string", "required": True, "format": "uri"}},
        **extra,
    }


def version(name: str, number: str = "1.0.0", **extra: Any) -> dict[str, Any]:
    return {
        "version": number,
        "manifest": manifest(name, number, **extra),
        "archive": f"{name}-{number}.tar.gz",
        "sha256": SHA,
        "publishedAt": "2026-01-01T00:00:00Z",
    }


def entry(name: str, *numbers: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "versions": [version(name, n, **extra) for n in numbers or ("1.0.0",)]}


def write_index(folder: Path, plugins: list[Any]) -> str:
    """Write folder/index.json and return the folder's file:// URL."""
    folder.mkdir(parents=True, exist_ok=True)
    document = {"apiVersion": 1, "name": "Test Plugins", "plugins": plugins}
    (folder / "index.json").write_text(json.dumps(document))
    return folder.as_uri()


async def add(url: str, name: str = "official") -> Repository:
    return await add_repository(name, url, RepositoryType.INDEX, "test plugins")


async def catalog_rows() -> list[Any]:
    """Everything a sync may write, to compare before and after."""
    return [
        await CatalogPlugin.all().order_by("id").values(),
        await PluginVersion.all().order_by("id").values(),
        await CatalogTag.all().order_by("id").values(),
        await PluginStats.all().order_by("plugin_id").values(),
    ]


async def entry_named(name: str) -> CatalogPlugin:
    return await CatalogPlugin.get(name=name)


# --- adding -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["ftp://plugins.test/", "plugins.test/index", "https://", "http:///index.json", "file://"],
)
async def test_adding_a_repository_with_a_bad_url_names_the_url(db: Database, url: str) -> None:
    with pytest.raises(BadUserInput) as raised:
        await add(url)
    assert [p.path for p in raised.value.fields] == ["url"]
    assert await Repository.filter(name="official").count() == 0


async def test_a_git_repository_is_accepted(db: Database) -> None:
    # Syncing one is tested in test_git_repositories.py.
    row = await add_repository("git", "https://git.test/plugins.git", RepositoryType.GIT, None)
    assert row.type == "git"


async def test_a_blank_name_is_refused(db: Database, tmp_path: Path) -> None:
    with pytest.raises(BadUserInput) as raised:
        await add(tmp_path.as_uri(), name="  ")
    assert [p.path for p in raised.value.fields] == ["name"]


async def test_a_second_repository_of_the_same_name_is_a_conflict(
    db: Database, tmp_path: Path
) -> None:
    await add(tmp_path.as_uri())
    with pytest.raises(Conflict, match="'official' exists already"):
        await add("https://other.test/plugins", name=" official ")
    with pytest.raises(Conflict):
        await add(tmp_path.as_uri(), name=BUILTIN)


# --- syncing --------------------------------------------------------------------------------


async def test_a_sync_adds_entries_with_versions_tags_and_stats(
    db: Database, tmp_path: Path
) -> None:
    url = write_index(
        tmp_path / "repo", [entry("slack", "1.2.0", "1.10.0", "1.9.1"), entry("teams")]
    )
    repository = await add(url)
    result = await sync_repository(repository.id)
    assert (result.added, result.updated, result.removed, result.errors) == (2, 0, 0, [])
    slack = await entry_named("slack")
    # The newest by semantic version, not by position or string order.
    assert slack.version == "1.10.0"
    assert (slack.display_name, slack.plugin_type, slack.available) == ("Slack", "webhook", True)
    assert slack.repository_id == repository.id
    versions = await PluginVersion.filter(plugin_id=slack.id).order_by("id")
    assert [v.version for v in versions] == ["1.2.0", "1.9.1", "1.10.0"]
    assert versions[0].archive_url == f"{url}/slack-1.2.0.tar.gz"
    assert versions[0].sha256 == SHA
    assert versions[0].published_at is not None and versions[0].published_at.year == 2026
    tags = await CatalogTag.filter(plugin_id=slack.id).order_by("tag").values_list("tag", flat=True)
    assert tags == ["alerts", "slack"]
    assert await PluginStats.filter(plugin_id=slack.id).count() == 1
    await repository.refresh_from_db()
    assert repository.last_synced_at is not None and repository.last_sync_error is None


async def test_a_second_sync_keeps_ids_ratings_and_counters(db: Database, tmp_path: Path) -> None:
    folder = tmp_path / "repo"
    url = write_index(folder, [entry("slack", "1.0.0"), entry("teams")])
    repository = await add(url)
    await sync_repository(repository.id)
    slack = await entry_named("slack")
    await PluginRating.create(plugin_id=slack.id, user_id="ann", rating=4, review="good")
    await CatalogPlugin.filter(id=slack.id).update(install_count=7, avg_rating=4.0, rating_count=1)
    await PluginStats.filter(plugin_id=slack.id).update(view_count=11)

    write_index(folder, [entry("slack", "1.0.0", "1.1.0", tags=["chat"]), entry("teams")])
    result = await sync_repository(repository.id)

    assert (result.added, result.updated, result.removed) == (0, 1, 0)
    again = await entry_named("slack")
    assert again.id == slack.id
    assert (again.version, again.tags) == ("1.1.0", ["chat"])
    assert (again.install_count, again.avg_rating, again.rating_count) == (7, 4.0, 1)
    assert again.updated_at >= slack.updated_at
    assert await PluginRating.filter(plugin_id=slack.id).count() == 1
    assert (await PluginStats.get(plugin_id=slack.id)).view_count == 11
    assert await CatalogTag.filter(plugin_id=slack.id).values_list("tag", flat=True) == ["chat"]
    assert await PluginVersion.filter(plugin_id=slack.id).count() == 2


async def test_syncing_an_unchanged_index_changes_nothing(db: Database, tmp_path: Path) -> None:
    repository = await add(write_index(tmp_path / "repo", [entry("slack", "1.0.0", "1.1.0")]))
    await sync_repository(repository.id)
    before = await catalog_rows()
    result = await sync_repository(repository.id)
    assert (result.added, result.updated, result.removed) == (0, 0, 0)
    assert await catalog_rows() == before


async def test_an_entry_gone_from_the_index_is_marked_unavailable(
    db: Database, tmp_path: Path
) -> None:
    folder = tmp_path / "repo"
    repository = await add(write_index(folder, [entry("slack"), entry("teams")]))
    await sync_repository(repository.id)
    teams = await entry_named("teams")
    installed = await InstalledPlugin.create(
        catalog_plugin_id=teams.id, name="teams", version="1.0.0"
    )

    write_index(folder, [entry("slack")])
    result = await sync_repository(repository.id)

    assert (result.added, result.updated, result.removed) == (0, 0, 1)
    teams = await entry_named("teams")
    assert not teams.available
    # An installed plugin is never orphaned by a sync.
    await installed.refresh_from_db()
    assert installed.catalog_plugin_id == teams.id
    assert await PluginVersion.filter(plugin_id=teams.id).count() == 1

    # It comes back (available, same id) when the index offers it again.
    write_index(folder, [entry("slack"), entry("teams")])
    result = await sync_repository(repository.id)
    assert (result.added, result.updated, result.removed) == (0, 1, 0)
    assert (await entry_named("teams")).available


async def test_an_index_with_no_plugins_marks_every_entry_unavailable(
    db: Database, tmp_path: Path
) -> None:
    folder = tmp_path / "repo"
    repository = await add(write_index(folder, [entry("slack"), entry("teams")]))
    await sync_repository(repository.id)
    write_index(folder, [])
    result = await sync_repository(repository.id)
    assert result.removed == 2
    assert await CatalogPlugin.filter(available=True).count() == 0


async def test_bad_entries_are_reported_while_the_others_sync(db: Database, tmp_path: Path) -> None:
    mismatched = entry("discord")
    mismatched["versions"][0]["manifest"]["name"] = "slack"
    url = write_index(
        tmp_path / "repo",
        [
            entry("slack"),
            {"name": "broken", "versions": [version("broken", "not-semver")]},
            mismatched,
            entry("slack", "2.0.0"),
            {"name": "twice", "versions": [version("twice"), version("twice")]},
            {"name": "empty", "versions": []},
            {"versions": [version("anonymous")]},
            "not an object",
            entry("email"),
        ],
    )
    repository = await add(url)
    result = await sync_repository(repository.id)

    assert (result.added, result.updated, result.removed) == (2, 0, 0)
    messages = {error.plugin: error.message for error in result.errors}
    assert sorted(messages) == [
        "broken",
        "discord",
        "empty",
        "plugins[6]",
        "plugins[7]",
        "slack",
        "twice",
    ]
    assert "version" in messages["broken"] and "semantic version" in messages["broken"]
    assert "differs from the entry name" in messages["discord"]
    assert "twice" in messages["slack"]
    assert "1.0.0" in messages["twice"]
    assert sorted(await CatalogPlugin.all().values_list("name", flat=True)) == ["email", "slack"]
    # The first listing of a plugin named twice is the one synced.
    assert (await entry_named("slack")).version == "1.0.0"


async def test_an_entry_that_fails_keeps_its_last_good_state(db: Database, tmp_path: Path) -> None:
    folder = tmp_path / "repo"
    repository = await add(write_index(folder, [entry("slack")]))
    await sync_repository(repository.id)
    write_index(folder, [entry("slack", type="daemon")])
    result = await sync_repository(repository.id)
    assert [error.plugin for error in result.errors] == ["slack"]
    assert result.removed == 0
    slack = await entry_named("slack")
    assert (slack.available, slack.plugin_type) == (True, "webhook")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"apiVersion": 1, "name": "x"}', "'plugins' list"),
        (b'{"plugins": {"slack": {}}}', "'plugins' list"),
        (b"[]", "'plugins' list"),
        (b'{"apiVersion": 2, "plugins": []}', "apiVersion"),
    ],
)
async def test_a_broken_index_is_refused_and_changes_nothing(
    db: Database, tmp_path: Path, document: bytes, message: str
) -> None:
    folder = tmp_path / "repo"
    repository = await add(write_index(folder, [entry("slack")]))
    await sync_repository(repository.id)
    before = await catalog_rows()

    (folder / "index.json").write_bytes(document)
    with pytest.raises(BadUserInput, match=message):
        await sync_repository(repository.id)

    assert await catalog_rows() == before
    await repository.refresh_from_db()
    assert repository.last_sync_error is not None and message in repository.last_sync_error


async def test_a_missing_index_is_refused_and_changes_nothing(db: Database, tmp_path: Path) -> None:
    folder = tmp_path / "repo"
    repository = await add(write_index(folder, [entry("slack")]))
    await sync_repository(repository.id)
    before = await catalog_rows()
    (folder / "index.json").unlink()
    with pytest.raises(BadUserInput, match="cannot be read"):
        await sync_repository(repository.id)
    assert await catalog_rows() == before


async def test_an_oversize_index_is_refused(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository = await add(write_index(tmp_path / "repo", [entry("slack")]))
    monkeypatch.setattr(repositories, "MAX_INDEX_BYTES", 100)
    with pytest.raises(BadUserInput, match="larger than the limit of 100 bytes"):
        await sync_repository(repository.id)
    assert await CatalogPlugin.filter(repository_id=repository.id).count() == 0


@pytest.mark.parametrize("suffix", ["", "/", "/index.json"])
async def test_the_url_may_name_the_folder_or_its_index(
    db: Database, tmp_path: Path, suffix: str
) -> None:
    url = write_index(tmp_path / "repo", [entry("slack")])
    repository = await add(url + suffix)
    result = await sync_repository(repository.id)
    assert result.added == 1
    stored = await PluginVersion.get(plugin_id=(await entry_named("slack")).id)
    assert stored.archive_url == f"{url}/slack-1.0.0.tar.gz"


async def test_the_builtin_repository_is_not_synced(db: Database) -> None:
    builtin = await Repository.get(name=BUILTIN)
    with pytest.raises(BadUserInput, match="is not synced"):
        await sync_repository(builtin.id)


# --- over HTTP ------------------------------------------------------------------------------


@pytest.fixture
async def http_server(tmp_path: Path) -> AsyncIterator[str]:
    """Serves tmp_path/served on 127.0.0.1 (a random port); /broken/ answers HTTP 500."""
    served = tmp_path / "served"
    served.mkdir()

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500, text="internal error")

    app = web.Application()
    app.router.add_get("/broken/index.json", broken)
    app.router.add_static("/", served)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def test_a_sync_over_http_reads_the_index_and_resolves_archives(
    db: Database, tmp_path: Path, http_server: str
) -> None:
    write_index(tmp_path / "served" / "plugins", [entry("slack", "1.0.0", "2.0.0")])
    repository = await add(f"{http_server}/plugins")
    result = await sync_repository(repository.id)
    assert (result.added, result.errors) == (1, [])
    slack = await entry_named("slack")
    assert slack.version == "2.0.0"
    urls = await PluginVersion.filter(plugin_id=slack.id).values_list("archive_url", flat=True)
    assert sorted(urls) == [
        f"{http_server}/plugins/slack-1.0.0.tar.gz",
        f"{http_server}/plugins/slack-2.0.0.tar.gz",
    ]


async def test_an_index_served_over_http_may_not_name_a_local_file(
    db: Database, tmp_path: Path, http_server: str
) -> None:
    sneaky = entry("sneaky")
    sneaky["versions"][0]["archive"] = "file:///etc/passwd"
    write_index(tmp_path / "served" / "plugins", [sneaky, entry("slack")])
    repository = await add(f"{http_server}/plugins/index.json")
    result = await sync_repository(repository.id)
    assert result.added == 1
    assert [error.plugin for error in result.errors] == ["sneaky"]


async def test_an_http_error_is_refused_and_changes_nothing(
    db: Database, tmp_path: Path, http_server: str
) -> None:
    folder = tmp_path / "served" / "plugins"
    repository = await add(write_index(folder, [entry("slack")]))
    await sync_repository(repository.id)
    before = await catalog_rows()
    await Repository.filter(id=repository.id).update(url=f"{http_server}/broken")
    with pytest.raises(BadUserInput, match="answered HTTP 500"):
        await sync_repository(repository.id)
    await Repository.filter(id=repository.id).update(url=f"{http_server}/missing")
    with pytest.raises(BadUserInput, match="answered HTTP 404"):
        await sync_repository(repository.id)
    assert await catalog_rows() == before


async def test_an_oversize_download_is_refused(
    db: Database, tmp_path: Path, http_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_index(tmp_path / "served" / "plugins", [entry("slack")])
    repository = await add(f"{http_server}/plugins")
    monkeypatch.setattr(repositories, "MAX_INDEX_BYTES", 100)
    with pytest.raises(BadUserInput, match="larger than the limit"):
        await sync_repository(repository.id)
    assert await CatalogPlugin.filter(repository_id=repository.id).count() == 0


async def test_an_unreachable_server_is_refused_and_changes_nothing(
    db: Database, tmp_path: Path
) -> None:
    folder = tmp_path / "repo"
    repository = await add(write_index(folder, [entry("slack")]))
    await sync_repository(repository.id)
    before = await catalog_rows()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port once the probe is closed.
    await Repository.filter(id=repository.id).update(url=f"http://127.0.0.1:{port}/plugins")
    with pytest.raises(BadUserInput, match="cannot be fetched"):
        await sync_repository(repository.id)
    assert await catalog_rows() == before


# --- removing -------------------------------------------------------------------------------


async def test_the_builtin_repository_cannot_be_removed(db: Database) -> None:
    builtin = await Repository.get(name=BUILTIN)
    with pytest.raises(Conflict, match="builtin"):
        await remove_repository(builtin.id)
    assert await Repository.exists(id=builtin.id)


async def test_a_repository_providing_installed_plugins_cannot_be_removed(
    db: Database, tmp_path: Path
) -> None:
    url = write_index(tmp_path / "repo", [entry("slack"), entry("teams"), entry("email")])
    repository = await add(url)
    await sync_repository(repository.id)
    for name in ("teams", "slack"):
        plugin = await entry_named(name)
        await InstalledPlugin.create(catalog_plugin_id=plugin.id, name=name, version="1.0.0")
    before = await catalog_rows()
    with pytest.raises(Conflict, match="installed plugins: slack, teams"):
        await remove_repository(repository.id)
    assert await catalog_rows() == before


async def test_removing_a_repository_deletes_its_entries(db: Database, tmp_path: Path) -> None:
    first = await add(write_index(tmp_path / "one", [entry("slack")]), name="one")
    second = await add(write_index(tmp_path / "two", [entry("teams")]), name="two")
    await sync_repository(first.id)
    await sync_repository(second.id)
    slack = await entry_named("slack")
    await PluginRating.create(plugin_id=slack.id, user_id="ann", rating=5)

    assert await remove_repository(first.id) == first.id

    assert not await Repository.exists(id=first.id)
    assert await CatalogPlugin.all().values_list("name", flat=True) == ["teams"]
    assert not await PluginVersion.filter(plugin_id=slack.id).exists()
    assert not await CatalogTag.filter(plugin_id=slack.id).exists()
    assert not await PluginStats.filter(plugin_id=slack.id).exists()
    assert not await PluginRating.filter(plugin_id=slack.id).exists()


async def test_a_large_sync_refreshes_the_catalog_statistics(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refreshed: list[bool] = []
    real = repositories.refresh_catalog_statistics

    async def spy() -> None:
        refreshed.append(True)
        await real()

    monkeypatch.setattr(repositories, "refresh_catalog_statistics", spy)
    monkeypatch.setattr(repositories, "ANALYZE_AFTER_CHANGES", 3)
    repository = await add(write_index(tmp_path / "small", [entry("one"), entry("two")]))
    await sync_repository(repository.id)
    assert refreshed == []  # two changes: left to the database's own schedule
    repository = await add(
        write_index(tmp_path / "large", [entry(f"p{n}") for n in range(3)]), name="large"
    )
    await sync_repository(repository.id)
    assert refreshed == [True]
    if db.backend == "postgres":
        rows = await get_connection("default").execute_query_dict(
            "SELECT reltuples FROM pg_class WHERE relname = 'catalog_plugins'"
        )
        assert rows[0]["reltuples"] == await CatalogPlugin.all().count()

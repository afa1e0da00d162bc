"""Plugin repositories: adding, syncing index.json into the catalog, and removing them.

Runs on SQLite and PostgreSQL (the `db` fixture). Indexes are folders in tmp_path, read through
file:// URLs or served by a local aiohttp server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
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
from runtime.catalog import repositories
from runtime.catalog.repositories import (
    BUILTIN,
    RepositoryType,
    SyncResult,
    add_repository,
    remove_repository,
    sync_repository,
)
from runtime.catalog.sources import index
from runtime.catalog.sources.fetch import UrlFetcher
from runtime.core.address_policy import AddressPolicy
from runtime.core.errors import BadUserInput, Conflict
from tests.conftest import Database
from tests.local_http import serve_app

SHA = "ab" * 32
Sync = Callable[[int], Awaitable[SyncResult]]


@pytest.fixture
def sync(network: AddressPolicy) -> Sync:
    """sync_repository under the test's address policy: its files and loopback allowed."""
    return functools.partial(sync_repository, policy=network)


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
    db: Database, sync: Sync, tmp_path: Path
) -> None:
    url = write_index(
        tmp_path / "repo", [entry("slack", "1.2.0", "1.10.0", "1.9.1"), entry("teams")]
    )
    repository = await add(url)
    result = await sync(repository.id)
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


async def test_a_second_sync_keeps_ids_ratings_and_counters(
    db: Database, sync: Sync, tmp_path: Path
) -> None:
    folder = tmp_path / "repo"
    url = write_index(folder, [entry("slack", "1.0.0"), entry("teams")])
    repository = await add(url)
    await sync(repository.id)
    slack = await entry_named("slack")
    await PluginRating.create(plugin_id=slack.id, user_id="ann", rating=4, review="good")
    await CatalogPlugin.filter(id=slack.id).update(install_count=7, avg_rating=4.0, rating_count=1)
    await PluginStats.filter(plugin_id=slack.id).update(view_count=11)

    write_index(folder, [entry("slack", "1.0.0", "1.1.0", tags=["chat"]), entry("teams")])
    result = await sync(repository.id)

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


async def test_syncing_an_unchanged_index_changes_nothing(
    db: Database, sync: Sync, tmp_path: Path
) -> None:
    repository = await add(write_index(tmp_path / "repo", [entry("slack", "1.0.0", "1.1.0")]))
    await sync(repository.id)
    before = await catalog_rows()
    result = await sync(repository.id)
    assert (result.added, result.updated, result.removed) == (0, 0, 0)
    assert await catalog_rows() == before


async def test_an_entry_gone_from_the_index_is_marked_unavailable(
    db: Database, sync: Sync, tmp_path: Path
) -> None:
    folder = tmp_path / "repo"
    repository = await add(write_index(folder, [entry("slack"), entry("teams")]))
    await sync(repository.id)
    teams = await entry_named("teams")
    installed = await InstalledPlugin.create(
        catalog_plugin_id=teams.id, name="teams", version="1.0.0"
    )

    write_index(folder, [entry("slack")])
    result = await sync(repository.id)

    assert (result.added, result.updated, result.removed) == (0, 0, 1)
    teams = await entry_named("teams")
    assert not teams.available
    # An installed plugin is never orphaned by a sync.
    await installed.refresh_from_db()
    assert installed.catalog_plugin_id == teams.id
    assert await PluginVersion.filter(plugin_id=teams.id).count() == 1

    # It comes back (available, same id) when the index offers it again.
    write_index(folder, [entry("slack"), entry("teams")])
    result = await sync(repository.id)
    assert (result.added, result.updated, result.removed) == (0, 1, 0)
    assert (await entry_named("teams")).available


async def test_an_index_with_no_plugins_marks_every_entry_unavailable(
    db: Database, sync: Sync, tmp_path: Path
) -> None:
    folder = tmp_path / "repo"
    repository = await add(write_index(folder, [entry("slack"), entry("teams")]))
    await sync(repository.id)
    write_index(folder, [])
    result = await sync(repository.id)
    assert result.removed == 2
    assert await CatalogPlugin.filter(available=True).count() == 0


async def test_bad_entries_are_reported_while_the_others_sync(
    db: Database, sync: Sync, tmp_path: Path
) -> None:
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
    result = await sync(repository.id)

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


async def test_an_entry_that_fails_keeps_its_last_good_state(
    db: Database, sync: Sync, tmp_path: Path
) -> None:
    folder = tmp_path / "repo"
    repository = await add(write_index(folder, [entry("slack")]))
    await sync(repository.id)
    write_index(folder, [entry("slack", type="daemon")])
    result = await sync(repository.id)
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
    db: Database, sync: Sync, tmp_path: Path, document: bytes, message: str
) -> None:
    folder = tmp_path / "repo"
    repository = await add(write_index(folder, [entry("slack")]))
    await sync(repository.id)
    before = await catalog_rows()

    (folder / "index.json").write_bytes(document)
    with pytest.raises(BadUserInput, match=message):
        await sync(repository.id)

    assert await catalog_rows() == before
    await repository.refresh_from_db()
    assert repository.last_sync_error is not None and message in repository.last_sync_error


async def test_a_missing_index_is_refused_and_changes_nothing(
    db: Database, sync: Sync, tmp_path: Path
) -> None:
    folder = tmp_path / "repo"
    repository = await add(write_index(folder, [entry("slack")]))
    await sync(repository.id)
    before = await catalog_rows()
    (folder / "index.json").unlink()
    with pytest.raises(BadUserInput, match="cannot be read"):
        await sync(repository.id)
    assert await catalog_rows() == before


async def test_an_oversize_index_is_refused(
    db: Database, sync: Sync, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository = await add(write_index(tmp_path / "repo", [entry("slack")]))
    monkeypatch.setattr(index, "MAX_INDEX_BYTES", 100)
    with pytest.raises(BadUserInput, match="larger than the limit of 100 bytes"):
        await sync(repository.id)
    assert await CatalogPlugin.filter(repository_id=repository.id).count() == 0


@pytest.mark.parametrize("suffix", ["", "/", "/index.json"])
async def test_the_url_may_name_the_folder_or_its_index(
    db: Database, sync: Sync, tmp_path: Path, suffix: str
) -> None:
    url = write_index(tmp_path / "repo", [entry("slack")])
    repository = await add(url + suffix)
    result = await sync(repository.id)
    assert result.added == 1
    stored = await PluginVersion.get(plugin_id=(await entry_named("slack")).id)
    assert stored.archive_url == f"{url}/slack-1.0.0.tar.gz"


async def test_the_builtin_repository_is_not_synced(db: Database, sync: Sync) -> None:
    builtin = await Repository.get(name=BUILTIN)
    with pytest.raises(BadUserInput, match="is not synced"):
        await sync(builtin.id)


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
    db: Database, sync: Sync, tmp_path: Path, http_server: str
) -> None:
    write_index(tmp_path / "served" / "plugins", [entry("slack", "1.0.0", "2.0.0")])
    repository = await add(f"{http_server}/plugins")
    result = await sync(repository.id)
    assert (result.added, result.errors) == (1, [])
    slack = await entry_named("slack")
    assert slack.version == "2.0.0"
    urls = await PluginVersion.filter(plugin_id=slack.id).values_list("archive_url", flat=True)
    assert sorted(urls) == [
        f"{http_server}/plugins/slack-1.0.0.tar.gz",
        f"{http_server}/plugins/slack-2.0.0.tar.gz",
    ]


async def test_an_index_served_over_http_may_not_name_a_local_file(
    db: Database, sync: Sync, tmp_path: Path, http_server: str
) -> None:
    sneaky = entry("sneaky")
    sneaky["versions"][0]["archive"] = "file:///etc/passwd"
    write_index(tmp_path / "served" / "plugins", [sneaky, entry("slack")])
    repository = await add(f"{http_server}/plugins/index.json")
    result = await sync(repository.id)
    assert result.added == 1
    assert [error.plugin for error in result.errors] == ["sneaky"]


async def test_an_http_error_is_refused_and_changes_nothing(
    db: Database, sync: Sync, tmp_path: Path, http_server: str
) -> None:
    folder = tmp_path / "served" / "plugins"
    repository = await add(write_index(folder, [entry("slack")]))
    await sync(repository.id)
    before = await catalog_rows()
    await Repository.filter(id=repository.id).update(url=f"{http_server}/broken")
    with pytest.raises(BadUserInput, match="answered HTTP 500"):
        await sync(repository.id)
    await Repository.filter(id=repository.id).update(url=f"{http_server}/missing")
    with pytest.raises(BadUserInput, match="answered HTTP 404"):
        await sync(repository.id)
    assert await catalog_rows() == before


async def test_an_oversize_download_is_refused(
    db: Database, sync: Sync, tmp_path: Path, http_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_index(tmp_path / "served" / "plugins", [entry("slack")])
    repository = await add(f"{http_server}/plugins")
    monkeypatch.setattr(index, "MAX_INDEX_BYTES", 100)
    with pytest.raises(BadUserInput, match="larger than the limit"):
        await sync(repository.id)
    assert await CatalogPlugin.filter(repository_id=repository.id).count() == 0


async def test_an_unreachable_server_is_refused_and_changes_nothing(
    db: Database, sync: Sync, tmp_path: Path
) -> None:
    folder = tmp_path / "repo"
    repository = await add(write_index(folder, [entry("slack")]))
    await sync(repository.id)
    before = await catalog_rows()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port once the probe is closed.
    await Repository.filter(id=repository.id).update(url=f"http://127.0.0.1:{port}/plugins")
    with pytest.raises(BadUserInput, match="could not be fetched"):
        await sync(repository.id)
    assert await catalog_rows() == before


# --- the address policy ---------------------------------------------------------------------


@pytest.fixture
async def recorded_server(tmp_path: Path) -> AsyncIterator[tuple[str, list[str]]]:
    """Serves tmp_path/served on 127.0.0.1; its base URL and the paths it was asked for."""
    served = tmp_path / "served"
    served.mkdir(exist_ok=True)
    seen: list[str] = []

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        seen.append(request.path)
        response: web.StreamResponse = await handler(request)
        return response

    app = web.Application(middlewares=[record])
    app.router.add_static("/", served)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    finally:
        await runner.cleanup()


async def test_a_sync_from_loopback_is_refused_unless_the_network_is_allowed(
    db: Database, sync: Sync, tmp_path: Path, recorded_server: tuple[str, list[str]]
) -> None:
    base, seen = recorded_server
    write_index(tmp_path / "served" / "plugins", [entry("slack")])
    hosts = ("127.0.0.1", "localhost")
    for host in hosts:
        repository = await add(base.replace("127.0.0.1", host) + "/plugins", name=host)
        with pytest.raises(BadUserInput, match="refused by the address policy") as raised:
            await sync_repository(repository.id)  # no allowed networks: the default
        assert "a loopback address" in raised.value.message
        assert "STREAMSPACE_ALLOWED_NETWORKS" in raised.value.message
        await repository.refresh_from_db()
        assert "refused by the address policy" in (repository.last_sync_error or "")
    assert seen == []
    assert await CatalogPlugin.all().count() == 0

    assert (await sync(repository.id)).added == 1  # with loopback allowed
    assert seen == ["/plugins/index.json"]


async def test_a_redirect_to_a_refused_address_fails_the_sync(db: Database, tmp_path: Path) -> None:
    async def elsewhere(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.2:{request.url.port}/index.json")

    app = web.Application()
    app.router.add_get("/plugins/index.json", elsewhere)
    async with serve_app(app) as base:
        repository = await add(f"{base}/plugins")
        only_this_server = AddressPolicy().allowing("127.0.0.1/32")
        with pytest.raises(BadUserInput, match=r"127\.0\.0\.2 is a loopback address"):
            await sync_repository(repository.id, policy=only_this_server)
    assert await CatalogPlugin.all().count() == 0


async def closed(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def test_closed_and_open_ports_fail_alike(
    db: Database, network: AddressPolicy, tmp_path: Path
) -> None:
    """Whatever listens (nothing, a non-HTTP service, one that says nothing), the sync says the
    same: the error is no port scanner."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]

    async def redis_like(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"-ERR unknown command 'GET'\r\n")
        await writer.drain()
        await closed(writer)

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await closed(writer)

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and hangs up
        await closed(writer)

    servers = [await asyncio.start_server(h, "127.0.0.1", 0) for h in (redis_like, hang_up, silent)]
    ports = [closed, *(server.sockets[0].getsockname()[1] for server in servers)]
    quick = UrlFetcher(network, timeout=aiohttp.ClientTimeout(total=1))
    messages = []
    try:
        for port in ports:
            repository = await add(f"http://127.0.0.1:{port}/plugins", name=f"port-{port}")
            with pytest.raises(BadUserInput) as raised:
                await sync_repository(repository.id, fetcher=quick, policy=network)
            messages.append(raised.value.message.replace(str(port), "PORT"))
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()
    assert (
        messages
        == [
            "repository 'port-PORT' was not synced: "
            "http://127.0.0.1:PORT/plugins/index.json could not be fetched"
        ]
        * 4
    )


@pytest.mark.parametrize(
    "where", ["/etc/", "/proc/self/environ", "elsewhere", "allowed/../elsewhere"]
)
async def test_a_file_repository_outside_the_allowed_folders_is_refused(
    db: Database, tmp_path: Path, where: str
) -> None:
    allowed = tmp_path / "allowed"
    write_index(allowed, [entry("slack")])
    write_index(tmp_path / "elsewhere", [entry("teams")])
    url = f"file://{where}" if where.startswith("/") else f"{tmp_path.as_uri()}/{where}"
    repository = await add(url)
    policy = AddressPolicy().allowing("", allowed)
    with pytest.raises(BadUserInput) as raised:
        await sync_repository(repository.id, policy=policy)
    assert "STREAMSPACE_FILE_REPOSITORY_ROOTS" in raised.value.message or (
        "'..'" in raised.value.message
    )
    assert await CatalogPlugin.all().count() == 0
    assert (await sync_repository((await add(allowed.as_uri(), "ok")).id, policy=policy)).added


async def test_without_allowed_folders_no_file_repository_is_read(
    db: Database, tmp_path: Path
) -> None:
    repository = await add(write_index(tmp_path / "repo", [entry("slack")]))
    with pytest.raises(BadUserInput, match="STREAMSPACE_FILE_REPOSITORY_ROOTS"):
        await sync_repository(repository.id)
    assert await CatalogPlugin.all().count() == 0


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:6379/", "127.0.0.1 is a loopback address"),
        ("http://169.254.169.254/latest/", "169.254.169.254 is a link-local address"),
        ("https://[::ffff:10.0.0.1]/plugins", "is a private address"),
        ("http://2130706433/", "2130706433 is a loopback address"),
        ("file:///etc/", "STREAMSPACE_FILE_REPOSITORY_ROOTS"),
    ],
)
async def test_adding_a_repository_the_policy_refuses_is_bad_input(
    db: Database, tmp_path: Path, url: str, message: str
) -> None:
    policy = AddressPolicy().allowing("", tmp_path)
    with pytest.raises(BadUserInput) as raised:
        await add_repository("local", url, RepositoryType.INDEX, None, policy=policy)
    assert [(p.path, message in p.message) for p in raised.value.fields] == [("url", True)]
    assert not await Repository.exists(name="local")
    # A name is judged when a sync resolves it; a file under an allowed folder is fine.
    await add_repository(
        "named", "https://plugins.example/", RepositoryType.INDEX, None, policy=policy
    )
    await add_repository("files", tmp_path.as_uri(), RepositoryType.INDEX, None, policy=policy)


# --- removing -------------------------------------------------------------------------------


async def test_the_builtin_repository_cannot_be_removed(db: Database) -> None:
    builtin = await Repository.get(name=BUILTIN)
    with pytest.raises(Conflict, match="builtin"):
        await remove_repository(builtin.id)
    assert await Repository.exists(id=builtin.id)


async def test_a_repository_providing_installed_plugins_cannot_be_removed(
    db: Database, sync: Sync, tmp_path: Path
) -> None:
    url = write_index(tmp_path / "repo", [entry("slack"), entry("teams"), entry("email")])
    repository = await add(url)
    await sync(repository.id)
    for name in ("teams", "slack"):
        plugin = await entry_named(name)
        await InstalledPlugin.create(catalog_plugin_id=plugin.id, name=name, version="1.0.0")
    before = await catalog_rows()
    with pytest.raises(Conflict, match="installed plugins: slack, teams"):
        await remove_repository(repository.id)
    assert await catalog_rows() == before


async def test_removing_a_repository_deletes_its_entries(
    db: Database, sync: Sync, tmp_path: Path
) -> None:
    first = await add(write_index(tmp_path / "one", [entry("slack")]), name="one")
    second = await add(write_index(tmp_path / "two", [entry("teams")]), name="two")
    await sync(first.id)
    await sync(second.id)
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
    db: Database, sync: Sync, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refreshed: list[bool] = []
    real = repositories.refresh_catalog_statistics

    async def spy() -> None:
        refreshed.append(True)
        await real()

    monkeypatch.setattr(repositories, "refresh_catalog_statistics", spy)
    monkeypatch.setattr(repositories, "ANALYZE_AFTER_CHANGES", 3)
    repository = await add(write_index(tmp_path / "small", [entry("one"), entry("two")]))
    await sync(repository.id)
    assert refreshed == []  # two changes: left to the database's own schedule
    repository = await add(
        write_index(tmp_path / "large", [entry(f"p{n}") for n in range(3)]), name="large"
    )
    await sync(repository.id)
    assert refreshed == [True]
    if db.backend == "postgres":
        rows = await get_connection("default").execute_query_dict(
            "SELECT reltuples FROM pg_class WHERE relname = 'catalog_plugins'"
        )
        assert rows[0]["reltuples"] == await CatalogPlugin.all().count()

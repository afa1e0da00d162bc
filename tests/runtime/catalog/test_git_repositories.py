"""git repositories over file://: versions from tags, installed like any archive."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from models import CatalogPlugin, PluginVersion
from runtime.catalog.repositories import RepositoryType, add_repository, sync_repository
from runtime.core.address_policy import AddressPolicy
from runtime.core.errors import BadUserInput
from tests.conftest import Database
from tests.local_http import serve_app
from tests.name_table import with_names
from tests.runtime.plugin_repo import dynamic_host, ping, write_plugin


def run(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.test", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def publish(work: Path, name: str, version: str, marker: str) -> None:
    """Put the plugin's folder at `version` (marker) into the work tree, commit and tag it."""
    folder = work / name
    if folder.exists():
        for child in folder.iterdir():
            child.unlink()
        folder.rmdir()
    write_plugin(work, name, version, marker).rename(folder)
    run("add", "-A", cwd=work)
    run("commit", "-q", "-m", f"{name} {version}", cwd=work)
    run("tag", f"{name}-v{version}", cwd=work)


def init(tmp_path: Path) -> tuple[Path, str]:
    """A work tree and the bare repository it pushes to; the bare one's file:// URL."""
    work = tmp_path / "work"
    bare = tmp_path / "plugins.git"
    work.mkdir()
    run("init", "-q", "-b", "main", cwd=work)
    run("init", "-q", "--bare", str(bare), cwd=tmp_path)
    run("remote", "add", "origin", bare.as_uri(), cwd=work)
    return work, bare.as_uri()


def push(work: Path) -> None:
    run("push", "-q", "--tags", "origin", "main", cwd=work)


async def test_a_git_repository_publishes_tagged_versions_that_install(
    db: Database, network: AddressPolicy, tmp_path: Path
) -> None:
    work, url = init(tmp_path)
    publish(work, "greeter", "1.0.0", "1")
    (work / "README.md").write_text("not a plugin\n")
    run("add", "-A", cwd=work)
    run("commit", "-q", "-m", "readme", cwd=work)
    push(work)
    data = tmp_path / "data"
    repository = await add_repository("git", url, RepositoryType.GIT, None)
    first = await sync_repository(repository.id, data_dir=data, policy=network)
    assert (first.added, first.updated, first.removed, first.errors) == (1, 0, 0, [])
    again = await sync_repository(repository.id, data_dir=data, policy=network)
    assert (again.added, again.updated, again.removed) == (0, 0, 0)  # same trees, same archives

    async with dynamic_host(data, network) as (host, installer):
        entry = await CatalogPlugin.get(name="greeter", repository_id=repository.id)
        row = await installer.install(entry.id, None, enable=True, installed_by="alice")
        assert row.status == "ACTIVE"
        assert await ping(host) == [("greeter", "SUCCEEDED", {"version": "1", "greeting": None})]

        publish(work, "greeter", "1.1.0", "1.1")
        push(work)
        later = await sync_repository(repository.id, data_dir=data, policy=network)
        assert (later.added, later.updated, later.removed) == (0, 1, 0)
        versions = await PluginVersion.filter(plugin_id=entry.id).values_list("version", flat=True)
        assert sorted(str(v) for v in versions) == ["1.0.0", "1.1.0"]
        row = await installer.upgrade(row.id)
        assert row.version == "1.1.0"
        assert await ping(host) == [("greeter", "SUCCEEDED", {"version": "1.1", "greeting": None})]
        row = await installer.rollback(row.id)
        assert await ping(host) == [("greeter", "SUCCEEDED", {"version": "1", "greeting": None})]


async def test_a_tag_whose_manifest_disagrees_is_reported(
    db: Database, network: AddressPolicy, tmp_path: Path
) -> None:
    work, url = init(tmp_path)
    publish(work, "greeter", "1.0.0", "1")
    run("tag", "greeter-v3.0.0", cwd=work)  # the tree still says 1.0.0
    push(work)
    repository = await add_repository("git", url, RepositoryType.GIT, None)
    result = await sync_repository(repository.id, data_dir=tmp_path / "data", policy=network)
    assert result.added == 1
    assert [(e.plugin, e.message) for e in result.errors] == [
        ("greeter", "tag greeter-v3.0.0 holds greeter 1.0.0 in its plugin.json")
    ]


async def test_an_unreachable_git_repository_is_reported(
    db: Database, network: AddressPolicy, tmp_path: Path
) -> None:
    missing = (tmp_path / "nowhere.git").as_uri()
    repository = await add_repository("git", missing, RepositoryType.GIT, None)
    with pytest.raises(BadUserInput, match="git clone failed"):
        await sync_repository(repository.id, data_dir=tmp_path / "data", policy=network)
    await repository.refresh_from_db()
    assert repository.last_sync_error and "git clone failed" in repository.last_sync_error


# --- the address policy ---------------------------------------------------------------------


@asynccontextmanager
async def served_over_http(bare: Path) -> AsyncIterator[tuple[str, list[str]]]:
    """The bare repository served on 127.0.0.1 over git's dumb HTTP protocol (its files as they
    are); its base URL and the paths asked for. /moved/ answers with a redirect to it."""
    run("update-server-info", cwd=bare)
    seen: list[str] = []

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        seen.append(request.path)
        response: web.StreamResponse = await handler(request)
        return response

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound(str(request.url).replace("/moved/", "/plugins.git/", 1))

    app = web.Application(middlewares=[record])
    app.router.add_get("/moved/{tail:.*}", moved)
    app.router.add_static("/plugins.git", bare)
    async with serve_app(app) as base:
        yield base, seen


async def test_a_git_repository_outside_the_allowed_folders_is_not_cloned(
    db: Database, tmp_path: Path
) -> None:
    work, url = init(tmp_path)
    publish(work, "greeter", "1.0.0", "1")
    push(work)
    data = tmp_path / "data"
    repository = await add_repository("git", url, RepositoryType.GIT, None)
    only_data = AddressPolicy().allowing("", data)
    with pytest.raises(BadUserInput, match="STREAMSPACE_FILE_REPOSITORY_ROOTS"):
        await sync_repository(repository.id, data_dir=data, policy=only_data)
    assert not (data / "repositories" / str(repository.id) / "clone.git").exists()
    assert await CatalogPlugin.all().count() == 0


async def test_git_over_http_reaches_loopback_only_when_allowed(
    db: Database, network: AddressPolicy, tmp_path: Path
) -> None:
    work, _ = init(tmp_path)
    publish(work, "greeter", "1.0.0", "1")
    push(work)
    data = tmp_path / "data"
    async with served_over_http(tmp_path / "plugins.git") as (base, seen):
        repository = await add_repository("git", f"{base}/plugins.git", RepositoryType.GIT, None)
        with pytest.raises(BadUserInput, match="refused by the address policy") as raised:
            await sync_repository(repository.id, data_dir=data)
        assert "127.0.0.1 is a loopback address" in raised.value.message
        assert seen == []

        result = await sync_repository(repository.id, data_dir=data, policy=network)
        assert (result.added, result.errors) == (1, [])
        assert seen


async def test_git_uses_the_addresses_the_policy_checked(
    db: Database, network: AddressPolicy, tmp_path: Path
) -> None:
    """git connects where the checked name resolved (no lookup of its own, so a name cannot
    resolve to one address for the check and another for git): plugins.test exists only in
    the policy's resolver."""
    work, _ = init(tmp_path)
    publish(work, "greeter", "1.0.0", "1")
    push(work)
    policy = with_names(network, {"plugins.test": ["127.0.0.1"]})
    async with served_over_http(tmp_path / "plugins.git") as (base, _):
        url = base.replace("127.0.0.1", "plugins.test") + "/plugins.git"
        repository = await add_repository("git", url, RepositoryType.GIT, None)
        result = await sync_repository(repository.id, data_dir=tmp_path / "data", policy=policy)
    assert result.added == 1


async def test_git_follows_no_redirect(
    db: Database, network: AddressPolicy, tmp_path: Path
) -> None:
    work, _ = init(tmp_path)
    publish(work, "greeter", "1.0.0", "1")
    push(work)
    async with served_over_http(tmp_path / "plugins.git") as (base, seen):
        repository = await add_repository("git", f"{base}/moved", RepositoryType.GIT, None)
        with pytest.raises(BadUserInput) as raised:
            await sync_repository(repository.id, data_dir=tmp_path / "data", policy=network)
    assert raised.value.message == (
        f"repository 'git' was not synced: {base}/moved could not be fetched (git clone failed)"
    )
    assert not [path for path in seen if path.startswith("/plugins.git")]


async def test_git_failures_do_not_tell_closed_ports_from_open_ones(
    db: Database, network: AddressPolicy, tmp_path: Path
) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    messages = []
    async with server:
        for port in (closed, server.sockets[0].getsockname()[1]):
            url = f"http://127.0.0.1:{port}/plugins.git"
            repository = await add_repository(f"git-{port}", url, RepositoryType.GIT, None)
            with pytest.raises(BadUserInput) as raised:
                await sync_repository(repository.id, data_dir=tmp_path / "data", policy=network)
            messages.append(raised.value.message.replace(str(port), "PORT"))
    assert messages[0] == messages[1], messages
    assert messages[0].endswith("could not be fetched (git clone failed)")

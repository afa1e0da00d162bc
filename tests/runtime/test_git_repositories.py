"""git repositories over file://: versions from tags, installed like any archive."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from models import CatalogPlugin, PluginVersion
from runtime.errors import BadUserInput
from runtime.repositories import RepositoryType, add_repository, sync_repository
from tests.conftest import Database
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
    db: Database, tmp_path: Path
) -> None:
    work, url = init(tmp_path)
    publish(work, "greeter", "1.0.0", "1")
    (work / "README.md").write_text("not a plugin\n")
    run("add", "-A", cwd=work)
    run("commit", "-q", "-m", "readme", cwd=work)
    push(work)
    data = tmp_path / "data"
    repository = await add_repository("git", url, RepositoryType.GIT, None)
    first = await sync_repository(repository.id, data_dir=data)
    assert (first.added, first.updated, first.removed, first.errors) == (1, 0, 0, [])
    again = await sync_repository(repository.id, data_dir=data)
    assert (again.added, again.updated, again.removed) == (0, 0, 0)  # same trees, same archives

    async with dynamic_host(data) as (host, installer):
        entry = await CatalogPlugin.get(name="greeter", repository_id=repository.id)
        row = await installer.install(entry.id, None, enable=True, installed_by="alice")
        assert row.status == "ACTIVE"
        assert await ping(host) == [("greeter", "SUCCEEDED", {"version": "1", "greeting": None})]

        publish(work, "greeter", "1.1.0", "1.1")
        push(work)
        later = await sync_repository(repository.id, data_dir=data)
        assert (later.added, later.updated, later.removed) == (0, 1, 0)
        versions = await PluginVersion.filter(plugin_id=entry.id).values_list("version", flat=True)
        assert sorted(str(v) for v in versions) == ["1.0.0", "1.1.0"]
        row = await installer.upgrade(row.id)
        assert row.version == "1.1.0"
        assert await ping(host) == [("greeter", "SUCCEEDED", {"version": "1.1", "greeting": None})]
        row = await installer.rollback(row.id)
        assert await ping(host) == [("greeter", "SUCCEEDED", {"version": "1", "greeting": None})]


async def test_a_tag_whose_manifest_disagrees_is_reported(db: Database, tmp_path: Path) -> None:
    work, url = init(tmp_path)
    publish(work, "greeter", "1.0.0", "1")
    run("tag", "greeter-v3.0.0", cwd=work)  # the tree still says 1.0.0
    push(work)
    repository = await add_repository("git", url, RepositoryType.GIT, None)
    result = await sync_repository(repository.id, data_dir=tmp_path / "data")
    assert result.added == 1
    assert [(e.plugin, e.message) for e in result.errors] == [
        ("greeter", "tag greeter-v3.0.0 holds greeter 1.0.0 in its plugin.json")
    ]


async def test_an_unreachable_git_repository_is_reported(db: Database, tmp_path: Path) -> None:
    missing = (tmp_path / "nowhere.git").as_uri()
    repository = await add_repository("git", missing, RepositoryType.GIT, None)
    with pytest.raises(BadUserInput, match="git clone failed"):
        await sync_repository(repository.id, data_dir=tmp_path / "data")
    await repository.refresh_from_db()
    assert repository.last_sync_error and "git clone failed" in repository.last_sync_error

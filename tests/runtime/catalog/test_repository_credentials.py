"""Repository URLs given with `user:pass@`: the URL is stored and shown without them, they are
stored encrypted, and syncing and installing still authenticate with them (an index over
HTTP, a git repository over git's HTTP transport)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from models import CatalogPlugin, PluginVersion, Repository
from runtime.catalog.repositories import RepositoryType, add_repository, sync_repository
from runtime.catalog.sources.git import git
from runtime.core.address_policy import AddressPolicy
from runtime.core.errors import BadUserInput
from runtime.core.url_credentials import UrlCredentials
from tests.conftest import TABLES, Database
from tests.local_http import serve
from tests.runtime.catalog.test_git_repositories import init, publish, push, run
from tests.runtime.hosts import BOX
from tests.runtime.plugin_repo import build_repository, dynamic_host, ping

USER = "deploy"
PASSWORD = "pa55-SECRET-repo-7781"


@dataclass
class PrivateFiles:
    """Serves a folder to callers holding USER:PASSWORD; remembers what each request sent."""

    root: Path
    url: str = ""
    authorizations: list[str | None] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        given = request.headers.get("Authorization")
        self.authorizations.append(given)
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if given != expected:
            # A server that echoes what it was sent: the password must still not get through.
            return web.Response(
                status=401,
                headers={"WWW-Authenticate": 'Basic realm="plugins"'},
                text=f"refused {given}",
            )
        path = (self.root / request.match_info["tail"]).resolve()
        if not path.is_relative_to(self.root.resolve()) or not path.is_file():
            return web.Response(status=404)
        return web.FileResponse(path)

    def with_credentials(self, password: str = PASSWORD) -> str:
        return self.url.replace("http://", f"http://{USER}:{password}@", 1)


async def private_files(root: Path) -> AsyncIterator[PrivateFiles]:
    files = PrivateFiles(root)
    async with serve(files.handle, "/{tail:.*}", method="GET") as url:
        files.url = url + "/"
        yield files


@pytest.fixture
async def index_server(tmp_path: Path) -> AsyncIterator[PrivateFiles]:
    build_repository(tmp_path, [("greeter", "1.0.0", "1", {})])
    async for files in private_files(tmp_path / "repo"):
        yield files


async def everything_stored() -> str:
    """The text of every row of every table."""
    from tortoise.connection import get_connection

    connection = get_connection("default")
    rows = [await connection.execute_query_dict(f'SELECT * FROM "{t}"') for t in TABLES]
    return repr(rows)


def files_under(folder: Path) -> str:
    return "".join(
        path.read_bytes().decode(errors="replace") for path in folder.rglob("*") if path.is_file()
    )


async def test_the_url_is_stored_without_credentials_which_are_stored_encrypted(
    db: Database,
) -> None:
    row = await add_repository(
        "private",
        f"https://{USER}:{PASSWORD}@git.example/plugins.git",
        RepositoryType.GIT,
        None,
        box=BOX,
    )
    assert row.url == "https://git.example/plugins.git"
    assert UrlCredentials.unseal(BOX, row.credentials) == UrlCredentials(USER, PASSWORD)
    assert PASSWORD not in await everything_stored()


async def test_credentials_are_refused_on_a_file_url_and_without_the_key(
    db: Database, tmp_path: Path
) -> None:
    with pytest.raises(BadUserInput) as raised:
        await add_repository(
            "f", f"file://{USER}:{PASSWORD}@{tmp_path}", RepositoryType.INDEX, None, box=BOX
        )
    assert [p.path for p in raised.value.fields] == ["url"]
    with pytest.raises(BadUserInput, match="secret key"):
        await add_repository(
            "h", f"https://{USER}:{PASSWORD}@h.example/", RepositoryType.INDEX, None
        )
    assert not await Repository.filter(name__in=["f", "h"]).exists()


async def test_a_private_index_syncs_and_its_archives_install_with_the_credentials(
    db: Database, tmp_path: Path, index_server: PrivateFiles, network: AddressPolicy
) -> None:
    row = await add_repository(
        "private", index_server.with_credentials(), RepositoryType.INDEX, None, box=BOX
    )
    result = await sync_repository(row.id, box=BOX, policy=network)
    assert (result.added, result.errors) == (1, [])
    [version] = await PluginVersion.all()
    assert version.archive_url == index_server.url + "greeter-1.0.0.tar.gz"

    data = tmp_path / "data"
    async with dynamic_host(data, network) as (host, installer):
        entry = await CatalogPlugin.get(name="greeter")
        installed = await installer.install(entry.id, None, enable=True, installed_by="alice")
        assert installed.status == "ACTIVE", installed.last_error
        assert await ping(host) == [("greeter", "SUCCEEDED", {"version": "1", "greeting": None})]
    assert None not in index_server.authorizations  # every request authenticated
    assert PASSWORD not in await everything_stored()
    assert PASSWORD not in files_under(data)


async def test_wrong_credentials_fail_the_sync_without_showing_them(
    db: Database, index_server: PrivateFiles, network: AddressPolicy
) -> None:
    wrong = "wrong-SECRET-pass-1234"
    row = await add_repository(
        "private", index_server.with_credentials(wrong), RepositoryType.INDEX, None, box=BOX
    )
    with pytest.raises(BadUserInput) as raised:
        await sync_repository(row.id, box=BOX, policy=network)
    await row.refresh_from_db()
    assert "answered HTTP 401" in str(row.last_sync_error)
    for text in (raised.value.message, str(row.last_sync_error), await everything_stored()):
        assert wrong not in text


class EchoingFetcher:
    """A transport whose failure quotes the credentials it was handed."""

    async def fetch(self, url: str, *, max_bytes: int, auth: UrlCredentials | None = None) -> bytes:
        assert auth is not None
        raise BadUserInput(f"{url} refused {auth.username}:{auth.password}")


async def test_a_sync_error_that_quotes_the_password_is_stored_without_it(db: Database) -> None:
    row = await add_repository(
        "private",
        f"https://{USER}:{PASSWORD}@plugins.example/",
        RepositoryType.INDEX,
        None,
        box=BOX,
    )
    with pytest.raises(BadUserInput) as raised:
        await sync_repository(row.id, EchoingFetcher(), box=BOX)
    await row.refresh_from_db()
    assert row.last_sync_error == "https://plugins.example/index.json refused deploy:********"
    assert PASSWORD not in raised.value.message


async def test_credentials_are_never_sent_to_another_host_an_index_names(
    db: Database, tmp_path: Path, index_server: PrivateFiles, network: AddressPolicy
) -> None:
    seen: list[str | None] = []

    async def elsewhere(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("Authorization"))
        return web.FileResponse(tmp_path / "repo" / "greeter-1.0.0.tar.gz")

    async with serve(elsewhere, "/{tail:.*}", method="GET") as other:
        index = tmp_path / "repo" / "index.json"
        index.write_text(
            index.read_text().replace('"greeter-1.0.0.tar.gz"', f'"{other}/greeter.tar.gz"')
        )
        row = await add_repository(
            "private", index_server.with_credentials(), RepositoryType.INDEX, None, box=BOX
        )
        assert (await sync_repository(row.id, box=BOX, policy=network)).added == 1
        async with dynamic_host(tmp_path / "data", network) as (_, installer):
            entry = await CatalogPlugin.get(name="greeter")
            installed = await installer.install(entry.id, None, enable=True, installed_by="a")
    assert installed.status == "ACTIVE"
    assert seen == [None]


async def test_credentials_do_not_follow_a_redirect_to_another_origin(
    db: Database, tmp_path: Path, network: AddressPolicy
) -> None:
    build_repository(tmp_path, [("greeter", "1.0.0", "1", {})])
    sent: list[str | None] = []
    seen: list[str | None] = []

    async def elsewhere(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("Authorization"))
        return web.FileResponse(tmp_path / "repo" / "index.json")

    async with serve(elsewhere, "/{tail:.*}", method="GET") as other:

        async def moved(request: web.Request) -> web.StreamResponse:
            sent.append(request.headers.get("Authorization"))
            raise web.HTTPFound(f"{other}/index.json")

        async with serve(moved, "/{tail:.*}", method="GET") as private:
            url = private.replace("http://", f"http://{USER}:{PASSWORD}@", 1) + "/"
            row = await add_repository("private", url, RepositoryType.INDEX, None, box=BOX)
            assert (await sync_repository(row.id, box=BOX, policy=network)).added == 1
    assert len(sent) == 1 and sent[0] is not None  # the repository's own origin had them
    assert seen == [None]


async def test_a_private_index_at_a_refused_address_is_never_contacted(
    db: Database, index_server: PrivateFiles
) -> None:
    row = await add_repository(
        "private", index_server.with_credentials(), RepositoryType.INDEX, None, box=BOX
    )
    with pytest.raises(BadUserInput) as raised:
        await sync_repository(row.id, box=BOX)  # the default policy: loopback refused
    assert "refused by the address policy" in raised.value.message
    assert PASSWORD not in raised.value.message
    assert index_server.authorizations == []


@pytest.fixture
async def git_server(tmp_path: Path) -> AsyncIterator[PrivateFiles]:
    """A bare git repository served over git's "dumb" HTTP transport, behind Basic auth."""
    work, _ = init(tmp_path)
    publish(work, "greeter", "1.0.0", "1")
    push(work)
    bare = tmp_path / "plugins.git"
    run("update-server-info", cwd=bare)
    async for files in private_files(bare):
        yield files


async def test_a_private_git_repository_syncs_with_the_credentials_kept_off_disk(
    db: Database, tmp_path: Path, git_server: PrivateFiles, network: AddressPolicy
) -> None:
    data = tmp_path / "data"
    row = await add_repository(
        "private", git_server.with_credentials(), RepositoryType.GIT, None, box=BOX
    )
    assert row.url == git_server.url
    first = await sync_repository(row.id, data_dir=data, box=BOX, policy=network)
    assert (first.added, first.errors) == (1, [])
    again = await sync_repository(
        row.id, data_dir=data, box=BOX, policy=network
    )  # a fetch this time
    assert again.errors == []
    assert PASSWORD not in files_under(data)
    assert PASSWORD not in await everything_stored()


async def test_a_git_clone_made_with_credentials_in_its_url_loses_them_on_the_next_sync(
    db: Database, tmp_path: Path, git_server: PrivateFiles, network: AddressPolicy
) -> None:
    data = tmp_path / "data"
    row = await add_repository(
        "private", git_server.with_credentials(), RepositoryType.GIT, None, box=BOX
    )
    # What an older server left: a clone whose configuration names the URL with credentials.
    clone = data / "repositories" / str(row.id) / "clone.git"
    clone.parent.mkdir(parents=True)
    await git("clone", "--bare", "--quiet", "--", git_server.with_credentials(), str(clone))
    assert PASSWORD in (clone / "config").read_text()
    assert (await sync_repository(row.id, data_dir=data, box=BOX, policy=network)).errors == []
    assert PASSWORD not in files_under(data)


async def test_wrong_git_credentials_fail_without_showing_them(
    db: Database, tmp_path: Path, git_server: PrivateFiles, network: AddressPolicy
) -> None:
    wrong = "wrong-SECRET-git-9876"
    row = await add_repository(
        "private", git_server.with_credentials(wrong), RepositoryType.GIT, None, box=BOX
    )
    with pytest.raises(BadUserInput) as raised:
        await sync_repository(row.id, data_dir=tmp_path / "data", box=BOX, policy=network)
    await row.refresh_from_db()
    assert "git clone failed" in str(row.last_sync_error)
    for text in (raised.value.message, str(row.last_sync_error), files_under(tmp_path / "data")):
        assert wrong not in text


async def test_a_private_git_repository_at_a_refused_address_is_never_contacted(
    db: Database, tmp_path: Path, git_server: PrivateFiles
) -> None:
    row = await add_repository(
        "private", git_server.with_credentials(), RepositoryType.GIT, None, box=BOX
    )
    with pytest.raises(BadUserInput) as raised:
        await sync_repository(row.id, data_dir=tmp_path / "data", box=BOX)
    assert "refused by the address policy" in raised.value.message
    assert PASSWORD not in raised.value.message
    assert git_server.authorizations == []

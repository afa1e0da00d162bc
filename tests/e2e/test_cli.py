"""The command line as a subprocess: migrate, help, token, what serve prints and makes, and how
serve fails."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import create_database, drop_database, require_postgres, run_apart
from tests.e2e.conftest import (
    Server,
    check_clean_exit,
    clean_env,
    data_of,
    free_port,
    run_cli,
    start_server,
)

pytestmark = pytest.mark.e2e

MIGRATIONS = sorted(
    f"models.{path.stem}"
    for path in (Path(__file__).parents[2] / "migrations").glob("[0-9][0-9][0-9][0-9]_*.py")
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_args(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[list[str]]:
    """Arguments naming an empty database: a new data directory, or a new PostgreSQL database."""
    args = ["--data-dir", str(tmp_path / "data")]
    if request.param == "sqlite":
        yield args
        return
    require_postgres()
    name = f"ssp_cli_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url = await create_database(name)
    try:
        yield [*args, "--database-url", url]
    finally:
        await drop_database(name)


async def test_migrate_prints_what_ran_then_up_to_date(database_args: list[str]) -> None:
    first = await run_cli("migrate", *database_args)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert [line.removeprefix("applied ") for line in lines if line.startswith("applied ")] == (
        MIGRATIONS
    )
    assert "up to date" in lines[-1]

    second = await run_cli("migrate", *database_args)
    assert second.returncode == 0, second.stderr
    assert "applied models." not in second.stdout
    assert "up to date" in second.stdout


async def test_migrate_hides_the_database_password(tmp_path: Path) -> None:
    # Nothing listens on this port: the command fails, and says so without the password.
    url = f"postgres://ops:hunter2@127.0.0.1:{free_port()}/nowhere"
    result = await run_cli("migrate", "--data-dir", str(tmp_path), "--database-url", url)
    assert result.returncode != 0
    assert "hunter2" not in result.stdout


async def test_help_lists_the_commands() -> None:
    result = await run_cli("--help")
    assert result.returncode == 0
    for command in ("serve", "migrate", "token", "schema"):
        assert command in result.stdout


async def test_serve_help_explains_flags_and_environment() -> None:
    result = await run_cli("serve", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # argparse wraps lines where it likes
    flags = {
        "--host": "STREAMSPACE_HOST",
        "--port": "STREAMSPACE_PORT",
        "--data-dir": "STREAMSPACE_DATA_DIR",
        "--database-url": "STREAMSPACE_DATABASE_URL",
        "--broadcast-url": "STREAMSPACE_BROADCAST_URL",
        "--log-level": "STREAMSPACE_LOG_LEVEL",
        "--log-format": "STREAMSPACE_LOG_FORMAT",
        "--allowed-networks": "STREAMSPACE_ALLOWED_NETWORKS",
        "--file-repository-roots": "STREAMSPACE_FILE_REPOSITORY_ROOTS",
        "--no-fast-paths": "STREAMSPACE_FAST_PATHS",
    }
    for flag, variable in flags.items():
        assert flag in text
        assert variable in text
    for variable in (
        "STREAMSPACE_JWT_SECRET",
        "STREAMSPACE_SECRET_KEY",
        "STREAMSPACE_MAX_BODY_BYTES",
        "STREAMSPACE_DEBUG",
    ):
        assert variable in text


async def test_token_and_migrate_help() -> None:
    token = await run_cli("token", "--help")
    assert token.returncode == 0
    for word in ("--role", "--subject", "--ttl", "--data-dir", "STREAMSPACE_JWT_SECRET"):
        assert word in token.stdout
    migrate = await run_cli("migrate", "--help")
    assert migrate.returncode == 0
    assert "--database-url" in migrate.stdout
    assert "STREAMSPACE_DATABASE_URL" in " ".join(migrate.stdout.split())


async def test_schema_prints_the_sdl() -> None:
    result = await run_cli("schema")
    assert result.returncode == 0
    assert "type Query" in result.stdout


async def test_serve_refuses_bad_settings_without_a_traceback(tmp_path: Path) -> None:
    env = clean_env(STREAMSPACE_PORT="eighty")
    result = await run_cli("serve", "--data-dir", str(tmp_path), env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "eighty" in result.stderr


async def test_serve_refuses_a_malformed_allowed_network(tmp_path: Path) -> None:
    result = await run_cli(
        "serve", "--data-dir", str(tmp_path), "--allowed-networks", "127.0.0.0/8,intranet"
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "STREAMSPACE_ALLOWED_NETWORKS (--allowed-networks): 'intranet'" in result.stderr


async def test_serve_exits_non_zero_when_the_database_is_unreachable(tmp_path: Path) -> None:
    url = f"postgres://postgres@127.0.0.1:{free_port()}/nowhere"
    result = await run_cli(
        "serve", "--port", str(free_port()), "--data-dir", str(tmp_path), "--database-url", url
    )
    assert result.returncode != 0


@pytest.mark.parametrize("subject", ["", "  "])
async def test_token_refuses_an_empty_or_blank_subject(tmp_path: Path, subject: str) -> None:
    result = await run_cli(
        "token", "--role", "admin", "--subject", subject, "--data-dir", str(tmp_path / "data")
    )
    assert result.returncode == 2
    assert "subject is empty" in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "data").exists()  # refused before any secret was made


# -- serve: the data directory and the first admin token -----------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[str, str | None]]:
    """A backend, and the URL of a new database of its own (SQLite: in the data directory)."""
    if request.param == "sqlite":
        yield "sqlite", None
        return
    require_postgres()
    name = f"ssp_serve_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url = run_apart(create_database(name))
    try:
        yield "postgres", url
    finally:
        run_apart(drop_database(name))


@contextlib.contextmanager
def serving(
    directory: Path, backend: tuple[str, str | None], flags: Sequence[str] = ()
) -> Iterator[Server]:
    server = start_server(directory, backend[0], backend[1], flags=flags)
    try:
        yield server
    finally:
        check_clean_exit(server, server.stop())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def owner_only(data_dir: Path) -> dict[str, int]:
    """The data directory's and its files' permissions that are not owner-only."""
    paths = [data_dir, *data_dir.iterdir()]
    return {str(path): mode(path) for path in paths if mode(path) & 0o077}


async def viewer_of(server: Server, token: str) -> Any:
    async with aiohttp.ClientSession() as http:
        return (await data_of(http, server, "{ viewer { subject roles } }", token=token))["viewer"]


async def test_serve_prints_an_admin_token_on_the_first_start_only_or_when_asked(
    tmp_path: Path, backend: tuple[str, str | None]
) -> None:
    with serving(tmp_path, backend) as first:
        assert first.admin_token, first.output()
        assert (await viewer_of(first, first.admin_token))["subject"] == "admin"
        # What the server made is its owner's alone, under the usual umask of a shell.
        assert owner_only(first.data_dir) == {}
        if backend[0] == "sqlite":
            assert (first.data_dir / "streamspace.db").exists()

    with serving(tmp_path, backend) as again:
        assert again.admin_token == ""
        output = again.output()
        assert "eyJ" not in output  # no token of any kind
        hint = f"streamspace-plugins token --role admin --subject NAME --data-dir {again.data_dir}"
        assert hint in output, output

    with serving(tmp_path, backend, flags=["--print-admin-token"]) as asked:
        assert asked.admin_token, asked.output()
        assert "admin" in (await viewer_of(asked, asked.admin_token))["roles"]


async def test_serve_closes_an_open_data_directory_and_logs_what_it_changed(
    tmp_path: Path, backend: tuple[str, str | None]
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data_dir.chmod(0o755)
    (data_dir / "jwt-secret").write_text("written-by-the-operator-0123456789-0123456789")
    (data_dir / "jwt-secret").chmod(0o644)
    (data_dir / "plugins").mkdir()
    (data_dir / "plugins").chmod(0o755)
    opened = {data_dir, data_dir / "jwt-secret", data_dir / "plugins"}
    if backend[0] == "sqlite":
        (data_dir / "streamspace.db").write_bytes(b"")  # an empty file is an empty database
        (data_dir / "streamspace.db").chmod(0o644)
        opened.add(data_dir / "streamspace.db")

    with serving(tmp_path, backend) as server:
        assert owner_only(data_dir) == {}
        logged = [json.loads(line) for line in server.logs().splitlines() if line.strip()]
        closed = {Path(entry["path"]) for entry in logged if "now owner-only" in entry["message"]}
        assert closed == opened, logged
        assert server.admin_token == ""  # the signing secret was there already


def ready_line(server: Server) -> dict[str, Any]:
    logged = [json.loads(line) for line in server.logs().splitlines() if line.strip()]
    (ready,) = [entry for entry in logged if entry["message"] == "ready"]
    return ready


async def readiness(server: Server) -> Any:
    async with aiohttp.ClientSession() as http, http.get(f"{server.base}/readyz") as response:
        assert response.status == 200
        return await response.json()


async def test_serve_without_fast_paths_says_so_in_readyz_and_its_start_log(
    tmp_path: Path, backend: tuple[str, str | None]
) -> None:
    (tmp_path / "fast").mkdir()
    (tmp_path / "plain").mkdir()
    with serving(tmp_path / "fast", backend) as fast:
        assert await readiness(fast) == {"status": "ready", "fastPaths": True}
        assert ready_line(fast)["fast_paths"] == "on"
    with serving(tmp_path / "plain", backend, flags=["--no-fast-paths"]) as plain:
        assert await readiness(plain) == {"status": "ready", "fastPaths": False}
        assert ready_line(plain)["fast_paths"] == "off"
        async with aiohttp.ClientSession() as http:
            catalog = await data_of(
                http,
                plain,
                '{ catalog(filter: {search: "slack"}, first: 5) { edges { node { name } } } }',
                token=plain.admin_token,
            )
        names = [edge["node"]["name"] for edge in catalog["catalog"]["edges"]]
        assert names == ["streamspace-slack"]

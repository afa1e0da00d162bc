"""The command line as a subprocess: migrate, help, and how serve fails."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import create_database, drop_database, require_postgres
from tests.e2e.conftest import clean_env, free_port, run_cli

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

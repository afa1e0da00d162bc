"""The SQLite database's files are their owner's alone, whatever the umask: the database holds
plugin settings, tokens' subjects and event payloads. PostgreSQL keeps no file of ours."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from tortoise.connection import get_connection

from models import close_database, init_database, migrate_database
from models.database import make_sqlite_file_private, sqlite_path


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual umask of a shell, under which files are created readable by everyone."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def journal_files(path: Path) -> list[Path]:
    return [Path(f"{path}-wal"), Path(f"{path}-shm")]


@pytest.mark.usefixtures("open_umask")
async def test_a_new_database_and_its_journal_files_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    url = f"sqlite://{path}"
    await migrate_database(url)
    assert mode(path) == 0o600
    await init_database(url)
    try:
        await get_connection("default").execute_script("CREATE TABLE scratch (id INTEGER)")
        # While a connection is open, its journal files exist: SQLite made them like the file.
        for journal in journal_files(path):
            assert mode(journal) == 0o600, journal
    finally:
        await close_database()


@pytest.mark.usefixtures("open_umask")
async def test_an_open_database_and_journal_files_are_closed_and_it_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "old.db"
    for name in (path, *journal_files(path)):
        name.write_bytes(b"")
        name.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="models.database"):
        make_sqlite_file_private(f"sqlite://{path}")
    for name in (path, *journal_files(path)):
        assert mode(name) == 0o600, name
    logged = [record for record in caplog.records if "now owner-only" in record.getMessage()]
    assert {record.path for record in logged} == {  # type: ignore[attr-defined]
        str(name) for name in (path, *journal_files(path))
    }


async def test_a_private_database_is_left_as_it_is(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "private.db"
    path.write_bytes(b"")
    path.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="models.database"):
        make_sqlite_file_private(f"sqlite://{path}")
    assert mode(path) == 0o600
    assert not caplog.records


@pytest.mark.parametrize(
    "url", ["postgres://postgres@127.0.0.1:5432/streamspace", "sqlite://:memory:"]
)
def test_postgresql_and_in_memory_databases_have_no_file(url: str) -> None:
    assert sqlite_path(url) is None
    make_sqlite_file_private(url)  # nothing to do, and nothing done

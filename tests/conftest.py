"""Fixtures shared by the suite: a migrated database per test on SQLite and on PostgreSQL.

Every fixture that builds a server, a host or a hub reads STREAMSPACE_FAST_PATHS as the server
does (`FAST_PATHS`): CI runs the GraphQL and runtime tests once more with it set to 0, and tests
of a fast path's own mechanics are marked `needs_fast_paths`, which skips them then.

PostgreSQL tests run against the server on 127.0.0.1:5432 (or STREAMSPACE_TEST_POSTGRES_URL),
each run in a database of its own. Where that server is unreachable they are skipped, unless
STREAMSPACE_REQUIRE_SERVICES=1 (set by CI), where they fail.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg
import pytest
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.connection import get_connection

from models import close_database, init_database, migrate_database
from runtime.catalog.repositories import ensure_builtin_repository
from runtime.core.address_policy import AddressPolicy
from runtime.core.settings import FAST_PATHS_SETTING, fast_paths_setting
from tests.local_http import local_network

POSTGRES_URL = os.environ.get(
    "STREAMSPACE_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test"
)
T = TypeVar("T")
# Read once, as the server reads it at start.
FAST_PATHS = fast_paths_setting()
needs_fast_paths = pytest.mark.skipif(
    not FAST_PATHS,
    reason=f"asserts a fast path's own mechanics, which {FAST_PATHS_SETTING}=0 turns off",
)
REQUIRE_SERVICES = os.environ.get("STREAMSPACE_REQUIRE_SERVICES") == "1"
TABLES = [
    "broadcast_payloads",
    "deliveries",
    "events",
    "plugin_logs",
    "plugin_storage",
    "catalog_plugin_tags",
    "plugin_versions",
    "plugin_ratings",
    "plugin_stats",
    "installed_plugins",
    "catalog_plugins",
    "repositories",
]


def reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), 2):
            return True
    except OSError:
        return False


def require_postgres() -> None:
    if reachable(POSTGRES_URL):
        return
    reason = f"PostgreSQL is not reachable at {POSTGRES_URL}"
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason}, and STREAMSPACE_REQUIRE_SERVICES=1 requires it")
    pytest.skip(f"{reason} (start it, or set STREAMSPACE_TEST_POSTGRES_URL)")


def run_apart(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` on a loop of its own in another thread.

    Session fixtures are first requested from inside a test's running loop, where asyncio.run
    is refused.
    """
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return parts._replace(path=f"/{name}").geturl()


async def create_database(name: str) -> str:
    connection = await asyncpg.connect(POSTGRES_URL.replace("postgres://", "postgresql://", 1))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return with_database(POSTGRES_URL, name)


async def drop_database(name: str) -> None:
    connection = await asyncpg.connect(POSTGRES_URL.replace("postgres://", "postgresql://", 1))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test run, dropped at the end."""
    require_postgres()
    name = f"ssp_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url = run_apart(create_database(name))
    run_apart(migrate_database(url))
    yield url
    run_apart(drop_database(name))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies, so migrations run once per session."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    run_apart(migrate_database(f"sqlite://{path}"))
    return path


@dataclass(frozen=True)
class Database:
    backend: str
    url: str
    # Whether the code under test takes the fast paths (STREAMSPACE_FAST_PATHS).
    fast_paths: bool = FAST_PATHS


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """An empty, migrated database (the builtin repository only), on each backend."""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_database")
    else:
        template = request.getfixturevalue("sqlite_template")
        shutil.copy(template, tmp_path / "test.db")
        url = f"sqlite://{tmp_path / 'test.db'}"
    # Tortoise caches compiled statements per connection name, not per dialect; this process
    # switches dialects between tests.
    EXECUTOR_CACHE.clear()
    await init_database(url)
    await ensure_builtin_repository()
    try:
        yield Database(request.param, url)
    finally:
        if request.param == "postgres":
            names = ", ".join(f'"{table}"' for table in TABLES)
            await get_connection("default").execute_script(
                f"TRUNCATE {names} RESTART IDENTITY CASCADE"
            )
        await close_database()


@pytest.fixture
def network(tmp_path: Path) -> AddressPolicy:
    """The address policy of a test's server: loopback and file:// under tmp_path allowed."""
    return local_network(tmp_path)


class QueryCounter(logging.Handler):
    """Counts the SQL statements Tortoise sends while it is attached."""

    VERBS = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.statements: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        sql = record.args[0] if isinstance(record.args, tuple) and record.args else record.msg
        if isinstance(sql, str) and sql.lstrip().upper().startswith(self.VERBS):
            self.statements.append(sql)

    @property
    def count(self) -> int:
        return len(self.statements)


@pytest.fixture
def sql_counter() -> Iterator[QueryCounter]:
    logger = logging.getLogger("tortoise.db_client")
    counter = QueryCounter()
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(counter)
    yield counter
    logger.removeHandler(counter)
    logger.setLevel(previous)

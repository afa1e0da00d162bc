"""Database configuration, start-up and migrations for SQLite and PostgreSQL alike."""

from __future__ import annotations

import logging
import os
import stat
from contextvars import ContextVar
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.connection import get_connection
from tortoise.migrations.api import migrate

MODELS_APP = "models"
MODEL_MODULES = [
    "models.repository",
    "models.catalog",
    "models.installed",
    "models.rating",
    "models.events",
    "models.broadcast",
]
MIGRATIONS_MODULE = "migrations"
DEFAULT_POOL_SIZE = 20
# SQLite's journal files, beside the database: they hold its data too.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
OPEN_BITS = 0o077  # group and other

log = logging.getLogger(__name__)

# The server's secret key while migrations run: data migrations that encrypt read it here.
_SECRET_KEY: ContextVar[str | None] = ContextVar("migration_secret_key", default=None)


def migration_secret_key() -> str | None:
    """The secret key `migrate_database` was given, for migrations that encrypt values."""
    return _SECRET_KEY.get()


def normalise_url(url: str) -> str:
    """Accept the spellings operators use (postgresql://) and size the PostgreSQL pool.

    asyncpg's default pool of 5 connections starves the API as soon as background work holds a
    few, so a pool size is set unless the URL names one.
    """
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme in {"postgresql", "postgres", "asyncpg"}:
        query = dict(parse_qsl(parts.query))
        query.setdefault("maxsize", str(DEFAULT_POOL_SIZE))
        return urlunsplit(("postgres", parts.netloc, parts.path, urlencode(query), ""))
    if scheme != "sqlite":
        raise ValueError(
            f"unsupported database URL scheme {scheme!r}: use sqlite://PATH or postgres://HOST/DB"
        )
    return url


async def _keep_session(connection: Any) -> None:
    """What a pooled PostgreSQL connection needs reset before its next use: nothing.

    asyncpg's default reset sends `RESET ALL`, `UNLISTEN *`, `CLOSE ALL` and releases advisory
    locks: a round trip on every release, so every statement and transaction paid two. Nothing
    here sets session state on pooled connections (no SET, LISTEN, cursors or advisory
    locks; the PostgreSQL broadcast listens on a connection of its own), and asyncpg still
    rolls back a transaction left open before calling this.
    """


def _connection(url: str) -> str | dict[str, Any]:
    normalised = normalise_url(url)
    if dialect(normalised) == "sqlite":
        return normalised
    config = expand_db_url(normalised)
    config["credentials"]["reset"] = _keep_session
    return config


def dialect(url: str) -> str:
    """sqlite or postgres, the two dialects the migrations serve."""
    return "sqlite" if urlsplit(url).scheme == "sqlite" else "postgres"


def database_config(url: str) -> dict[str, Any]:
    """The Tortoise configuration for url, models and migrations included."""
    return {
        "connections": {"default": _connection(url)},
        "apps": {
            MODELS_APP: {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": MIGRATIONS_MODULE,
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def sqlite_path(url: str) -> Path | None:
    """The file a SQLite URL names; None for PostgreSQL and in-memory databases."""
    normalised = normalise_url(url)
    if dialect(normalised) != "sqlite":
        return None
    file_path = str(expand_db_url(normalised)["credentials"]["file_path"])
    return None if file_path == ":memory:" else Path(file_path)


def make_sqlite_file_private(url: str) -> None:
    """Create a SQLite database's file owner-only before SQLite does (which would follow the
    umask, 0644 as a rule), and take group and other permissions from an existing one and its
    journal files. SQLite creates the journal files with the database file's permissions."""
    path = sqlite_path(url)
    if path is None:
        return
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for companion in (path, *(Path(f"{path}{suffix}") for suffix in SQLITE_COMPANIONS)):
        _take_open_bits(companion)


def _take_open_bits(path: Path) -> None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if mode & OPEN_BITS:
        os.chmod(path, mode & ~OPEN_BITS)
        log.warning(
            "database file was open to other users; now owner-only",
            extra={"path": str(path), "was": f"{mode:04o}", "now": f"{mode & ~OPEN_BITS:04o}"},
        )


async def migrate_database(
    url: str, target: str | None = None, *, secret_key: str | None = None
) -> list[str]:
    """Apply pending migrations (up to target, e.g. models.0001_initial); return their names.

    `secret_key` (STREAMSPACE_SECRET_KEY) is what migrations that encrypt existing values
    use; one that finds such values without it fails, changing nothing.
    """
    make_sqlite_file_private(url)
    applied: list[str] = []

    def progress(event: str, app_label: str, name: str) -> None:
        if event == "apply_done":
            applied.append(f"{app_label}.{name}")

    token = _SECRET_KEY.set(secret_key)
    try:
        await migrate(config=database_config(url), target=target, progress=progress)
    finally:
        _SECRET_KEY.reset(token)
        # An open aiosqlite connection keeps a non-daemon thread, and the process, alive.
        await Tortoise.close_connections()
    return applied


async def init_database(url: str) -> None:
    """Open the connections. The context is shared with every task, as the ASGI server needs."""
    make_sqlite_file_private(url)
    await Tortoise.init(config=database_config(url), _enable_global_fallback=True)


async def close_database() -> None:
    await Tortoise.close_connections()


async def ping_database() -> None:
    """Raise unless the database answers a trivial query."""
    await get_connection("default").execute_query("SELECT 1")

"""Settings of a server or command: flags first, then environment variables, then defaults.

Secrets left unset are generated once into the data directory, so `serve` and `token` run with
the same data directory agree without any set-up.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATA_DIR = "./.streamspace"
JWT_SECRET_FILE = "jwt-secret"
SECRET_KEY_FILE = "secret-key"


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def read_or_create_secret(path: Path) -> str:
    """The secret stored at `path`, created (owner-only) on first use."""
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    # O_EXCL: two processes starting at once must not write two different secrets.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value)
    return value


@dataclass(frozen=True)
class Settings:
    """Everything a server process needs to know; build it with `Settings.load`."""

    data_dir: Path
    database_url: str
    broadcast_url: str
    jwt_secret: str
    secret_key: str
    jwt_secret_generated: bool
    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "INFO"
    log_format: str = "json"
    max_body_bytes: int = 1_048_576
    debug: bool = False

    @classmethod
    def load(
        cls,
        *,
        data_dir: str | None = None,
        database_url: str | None = None,
        broadcast_url: str | None = None,
        host: str | None = None,
        port: int | None = None,
        log_level: str | None = None,
        log_format: str | None = None,
    ) -> Settings:
        directory = Path(data_dir or env("STREAMSPACE_DATA_DIR", DEFAULT_DATA_DIR) or "").resolve()
        jwt_secret = env("STREAMSPACE_JWT_SECRET")
        secret_key = env("STREAMSPACE_SECRET_KEY")
        return cls(
            data_dir=directory,
            database_url=database_url
            or env("STREAMSPACE_DATABASE_URL")
            or f"sqlite://{directory / 'streamspace.db'}",
            broadcast_url=broadcast_url or env("STREAMSPACE_BROADCAST_URL", "memory://") or "",
            jwt_secret=jwt_secret or read_or_create_secret(directory / JWT_SECRET_FILE),
            secret_key=secret_key or read_or_create_secret(directory / SECRET_KEY_FILE),
            jwt_secret_generated=jwt_secret is None,
            host=host or env("STREAMSPACE_HOST", "127.0.0.1") or "",
            port=port or int(env("STREAMSPACE_PORT", "8080") or 8080),
            log_level=(log_level or env("STREAMSPACE_LOG_LEVEL", "INFO") or "INFO").upper(),
            log_format=log_format or env("STREAMSPACE_LOG_FORMAT", "json") or "json",
            max_body_bytes=int(env("STREAMSPACE_MAX_BODY_BYTES", "1048576") or 1_048_576),
            debug=env("STREAMSPACE_DEBUG", "") in {"1", "true", "yes"},
        )

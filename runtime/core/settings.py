"""Settings of a server or command: flags first, then environment variables, then defaults.

Secrets left unset are generated once into the data directory, so `serve` and `token` run with
the same data directory agree without any set-up.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from runtime.core.address_policy import (
    ALLOWED_NETWORKS_SETTING,
    FILE_ROOTS_SETTING,
    AddressPolicy,
    Network,
    parse_networks,
    parse_roots,
)
from runtime.core.data_dir import create_private_dir

DEFAULT_DATA_DIR = "./.streamspace"
JWT_SECRET_FILE = "jwt-secret"
SECRET_KEY_FILE = "secret-key"


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _read_secret(path: Path) -> str:
    value = path.read_text(encoding="utf-8").strip()
    # An empty secret would sign tokens anyone can forge: refuse rather than run with it.
    if not value:
        raise ValueError(f"{path} is empty: delete it to generate a new secret, or set one")
    return value


def _create_in_place(path: Path, value: str) -> bool:
    """Where hard links are not supported: O_EXCL still lets only one process create it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value)
    return True


def read_or_create_secret(path: Path) -> str:
    """The secret stored at `path`, created (owner-only) on first use."""
    return load_secret(path)[0]


def load_secret(path: Path) -> tuple[str, bool]:
    """The secret stored at `path`, and whether this call created it (owner-only, in an
    owner-only directory when it makes that too)."""
    if path.exists():
        return _read_secret(path), False
    create_private_dir(path.parent)
    value = secrets.token_urlsafe(48)
    # The secret is written whole to a private temporary file, then linked into place:
    # link fails when the name exists, so of two processes starting at once one secret wins,
    # and no reader ever sees a half-written (or empty) file.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    created = False
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(value)
        os.link(temporary, path)
        created = True
    except FileExistsError:
        pass
    except OSError:
        created = _create_in_place(path, value)
    finally:
        temporary.unlink(missing_ok=True)
    return _read_secret(path), created


def _int_env(name: str) -> int | None:
    value = env(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a whole number") from None


def _positive_int(name: str, default: int) -> int:
    value = _int_env(name)
    if value is None:
        return default
    if value <= 0:
        raise ValueError(f"{name}={value} must be greater than 0")
    return value


FAST_PATHS_SETTING = "STREAMSPACE_FAST_PATHS"
_OFF = {"0", "false", "no", "off"}
_ON = {"1", "true", "yes", "on"}


def fast_paths_setting(default: bool = True) -> bool:
    """Whether `STREAMSPACE_FAST_PATHS` leaves the fast paths on (unset: `default`)."""
    text = env(FAST_PATHS_SETTING)
    if text is None:
        return default
    if text.lower() in _OFF:
        return False
    if text.lower() in _ON:
        return True
    raise ValueError(f"{FAST_PATHS_SETTING}={text!r} must be 1 or 0 (true/false, yes/no, on/off)")


def _positive_seconds(name: str, default: float) -> float:
    text = env(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{name}={text!r} must be a number of seconds greater than 0")
    return value


def with_pool_size(url: str, size: int | None) -> str:
    """A PostgreSQL URL whose pool holds at most `size` connections (SQLite: unchanged)."""
    parts = urlsplit(url)
    if size is None or parts.scheme not in {"postgres", "postgresql", "asyncpg"}:
        return url
    query = dict(parse_qsl(parts.query))
    query["maxsize"] = str(size)
    return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass(frozen=True)
class Settings:
    """Everything a server process needs to know; build it with `Settings.load`."""

    data_dir: Path
    database_url: str
    broadcast_url: str
    jwt_secret: str
    secret_key: str
    jwt_secret_generated: bool
    # This load generated the signing secret into the data directory: the first start.
    jwt_secret_created: bool = False
    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "INFO"
    log_format: str = "json"
    max_body_bytes: int = 1_048_576
    debug: bool = False
    delivery_max_attempts: int = 8
    delivery_backoff_base: float = 2.0
    retention_days: float = 30.0
    # Deliveries one plugin may run at once unless its manifest says otherwise.
    workers_dispatch: int = 4
    # Networks outgoing requests may reach although not public; folders file:// repositories
    # may use besides the data directory.
    allowed_networks: tuple[Network, ...] = ()
    file_repository_roots: tuple[Path, ...] = ()

    def address_policy(self) -> AddressPolicy:
        """The policy every outgoing request of the server and its plugins obeys."""
        return AddressPolicy(
            self.allowed_networks, (self.data_dir.resolve(), *self.file_repository_roots)
        )

    # WebSocket: seconds to send connection_init, and the largest message before it.
    ws_init_timeout: float = 10.0
    ws_init_max_bytes: int = 65_536
    # HTTP: seconds for a request's headers and for its whole body; the headers' size.
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_header_bytes: int = 65_536
    # Seconds an idle keep-alive connection stays open; in-flight requests' time on SIGTERM.
    keep_alive_timeout: int = 5
    shutdown_timeout: int = 30
    # Connections and requests at once before HTTP requests are answered 503.
    max_concurrency: int = 4096
    # False: every fast path that leans on a library's internals (graph/_fast/README.md,
    # runtime/db/README.md) takes the library's documented way instead.
    fast_paths: bool = True

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
        delivery_max_attempts: int | None = None,
        delivery_backoff_base: float | None = None,
        db_pool_size: int | None = None,
        workers_dispatch: int | None = None,
        allowed_networks: str | None = None,
        file_repository_roots: str | None = None,
        fast_paths: bool | None = None,
    ) -> Settings:
        directory = Path(data_dir or env("STREAMSPACE_DATA_DIR", DEFAULT_DATA_DIR) or "").resolve()
        jwt_secret, jwt_created = env("STREAMSPACE_JWT_SECRET"), False
        secret_key = env("STREAMSPACE_SECRET_KEY")
        generated = jwt_secret is None
        if jwt_secret is None:
            jwt_secret, jwt_created = load_secret(directory / JWT_SECRET_FILE)
        return cls(
            data_dir=directory,
            database_url=with_pool_size(
                database_url
                or env("STREAMSPACE_DATABASE_URL")
                or f"sqlite://{directory / 'streamspace.db'}",
                db_pool_size or _int_env("STREAMSPACE_DB_POOL_SIZE"),
            ),
            broadcast_url=broadcast_url or env("STREAMSPACE_BROADCAST_URL", "memory://") or "",
            jwt_secret=jwt_secret,
            secret_key=secret_key or read_or_create_secret(directory / SECRET_KEY_FILE),
            jwt_secret_generated=generated,
            jwt_secret_created=jwt_created,
            host=host or env("STREAMSPACE_HOST", "127.0.0.1") or "",
            port=port or int(env("STREAMSPACE_PORT", "8080") or 8080),
            log_level=(log_level or env("STREAMSPACE_LOG_LEVEL", "INFO") or "INFO").upper(),
            log_format=log_format or env("STREAMSPACE_LOG_FORMAT", "json") or "json",
            max_body_bytes=_positive_int("STREAMSPACE_MAX_BODY_BYTES", 1_048_576),
            debug=env("STREAMSPACE_DEBUG", "") in {"1", "true", "yes"},
            delivery_max_attempts=delivery_max_attempts
            or int(env("STREAMSPACE_DELIVERY_MAX_ATTEMPTS", "8") or 8),
            delivery_backoff_base=delivery_backoff_base
            or float(env("STREAMSPACE_DELIVERY_BACKOFF_BASE", "2") or 2),
            retention_days=float(env("STREAMSPACE_RETENTION_DAYS", "30") or 30),
            workers_dispatch=workers_dispatch or _int_env("STREAMSPACE_WORKERS_DISPATCH") or 4,
            allowed_networks=parse_networks(
                allowed_networks
                if allowed_networks is not None
                else env(ALLOWED_NETWORKS_SETTING, "")
            ),
            file_repository_roots=parse_roots(
                file_repository_roots
                if file_repository_roots is not None
                else env(FILE_ROOTS_SETTING, "")
            ),
            ws_init_timeout=_positive_seconds("STREAMSPACE_WS_INIT_TIMEOUT", 10.0),
            ws_init_max_bytes=_positive_int("STREAMSPACE_WS_INIT_MAX_BYTES", 65_536),
            header_timeout=_positive_seconds("STREAMSPACE_HEADER_TIMEOUT", 10.0),
            body_timeout=_positive_seconds("STREAMSPACE_BODY_TIMEOUT", 30.0),
            max_header_bytes=_positive_int("STREAMSPACE_MAX_HEADER_BYTES", 65_536),
            keep_alive_timeout=_positive_int("STREAMSPACE_KEEP_ALIVE_TIMEOUT", 5),
            shutdown_timeout=_positive_int("STREAMSPACE_SHUTDOWN_TIMEOUT", 30),
            max_concurrency=_positive_int("STREAMSPACE_MAX_CONCURRENCY", 4096),
            fast_paths=fast_paths_setting() if fast_paths is None else fast_paths,
        )

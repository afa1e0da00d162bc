"""The `streamspace-plugins` command line.

Every flag also reads an environment variable (shown in --help); flags win.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import shlex
import signal
import sys
from collections.abc import Sequence
from datetime import timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from runtime.core.auth import Role, TokenIssuer, check_subject, parse_ttl
from runtime.core.data_dir import create_private_dir, tighten_data_dir
from runtime.core.errors import BadUserInput
from runtime.core.settings import Settings

if TYPE_CHECKING:
    import uvicorn
    from starlette.applications import Starlette

DESCRIPTION = """\
StreamSpace Plugins: the plugin platform of StreamSpace, served over GraphQL.

Start a server on the embedded default (SQLite in the data directory, in-process broadcast):
  streamspace-plugins serve
then open http://127.0.0.1:8080/graphql and send the admin token it prints on its first start
(later: `streamspace-plugins token --role admin --subject NAME`) as
  {"Authorization": "Bearer <token>"}

Every flag also reads an environment variable (flags win); `COMMAND --help` lists them.
"""

SERVE_EPILOG = """\
settings read only from the environment:
  STREAMSPACE_JWT_SECRET          signs bearer tokens (default: generated once into
                                  <data-dir>/jwt-secret, so `token` and `serve` agree)
  STREAMSPACE_SECRET_KEY          encrypts secret plugin settings at rest (default:
                                  generated once into <data-dir>/secret-key)
  STREAMSPACE_MAX_BODY_BYTES      request body cap; larger requests get 413; also the
                                  largest WebSocket message (default 1048576)
  STREAMSPACE_DEBUG               1 shows unexpected errors' messages instead of masking them
  STREAMSPACE_RETENTION_DAYS      days events, deliveries and logs are kept (default 30)
  STREAMSPACE_HEADER_TIMEOUT      seconds for a request's headers, else 408 (default 10)
  STREAMSPACE_MAX_HEADER_BYTES    a request's headers at most, else 431 (default 65536)
  STREAMSPACE_BODY_TIMEOUT        seconds for a request's whole body, else 408 (default 30)
  STREAMSPACE_KEEP_ALIVE_TIMEOUT  seconds an idle keep-alive connection stays (default 5)
  STREAMSPACE_MAX_CONCURRENCY     connections and requests at once before new requests
                                  get 503 (default 4096)
  STREAMSPACE_SHUTDOWN_TIMEOUT    seconds in-flight requests get on SIGTERM (default 30)
  STREAMSPACE_WS_INIT_TIMEOUT     seconds a WebSocket has to send connection_init, else
                                  it is closed 4408 (default 10)
  STREAMSPACE_WS_INIT_MAX_BYTES   largest WebSocket message before connection_init
                                  (default 65536; larger closes the socket 1009)

On start, serve applies pending migrations, makes the data directory its owner's alone, then
prints where it listens and, on the first start (when it generates the data directory's
signing secret) or with --print-admin-token, an admin token valid for 24 hours; otherwise
the command that mints one. SIGTERM or Ctrl-C stop it gracefully.
"""

TOKEN_EPILOG = """\
The token is signed with STREAMSPACE_JWT_SECRET when set, else with <data-dir>/jwt-secret,
the secret `serve` uses with the same data directory. Send it as
  Authorization: Bearer <token>
"""
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
STARTUP_FAILURE = 3
# Allocations between young-generation collections (Python's default: 700).
GC_YOUNG_THRESHOLD = 20_000

FIRST_ADMIN_TTL = timedelta(hours=24)
PRIVATE_UMASK = 0o077


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        help="where the database, secrets and plugin files live "
        "(env STREAMSPACE_DATA_DIR, default ./.streamspace)",
    )


def _add_database_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        help="sqlite://PATH or postgres://USER@HOST:PORT/DB (env STREAMSPACE_DATABASE_URL, "
        "default sqlite://<data-dir>/streamspace.db)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamspace-plugins",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the server (applies pending migrations first)",
        description="Run the GraphQL server. Every flag also reads the environment variable "
        "shown; flags win.",
        epilog=SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument(
        "--host", help="address to listen on (env STREAMSPACE_HOST, default 127.0.0.1)"
    )
    serve.add_argument("--port", type=int, help="port (env STREAMSPACE_PORT, default 8080)")
    _add_data_dir(serve)
    _add_database_url(serve)
    serve.add_argument(
        "--broadcast-url",
        help="memory:// (default), redis://HOST:PORT or postgres://… "
        "(env STREAMSPACE_BROADCAST_URL)",
    )
    serve.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        help="DEBUG, INFO, WARNING, ERROR (env STREAMSPACE_LOG_LEVEL, default INFO)",
    )
    serve.add_argument(
        "--log-format",
        choices=["json", "text"],
        help="json: one object per line on stderr; text (env STREAMSPACE_LOG_FORMAT, default json)",
    )
    serve.add_argument(
        "--delivery-max-attempts",
        type=int,
        help="attempts before a delivery is DEAD "
        "(env STREAMSPACE_DELIVERY_MAX_ATTEMPTS, default 8)",
    )
    serve.add_argument(
        "--delivery-backoff-base",
        type=float,
        help="seconds; retry n waits up to base*2^(n-1), with full jitter "
        "(env STREAMSPACE_DELIVERY_BACKOFF_BASE, default 2)",
    )
    serve.add_argument(
        "--workers-dispatch",
        type=int,
        metavar="N",
        help="deliveries one plugin runs at once unless its installation or manifest sets "
        "'concurrency' (env STREAMSPACE_WORKERS_DISPATCH, default 4)",
    )
    serve.add_argument(
        "--allowed-networks",
        metavar="CIDRS",
        help="comma-separated networks outgoing requests (repositories, archives, webhooks, "
        "SMTP) may reach although loopback, link-local or private, e.g. 127.0.0.0/8,10.0.0.0/8 "
        "(env STREAMSPACE_ALLOWED_NETWORKS; default none: only public addresses)",
    )
    serve.add_argument(
        "--file-repository-roots",
        metavar="DIRS",
        help="colon-separated folders file:// repositories may use besides the data "
        "directory (env STREAMSPACE_FILE_REPOSITORY_ROOTS; default none)",
    )
    serve.add_argument(
        "--print-admin-token",
        action="store_true",
        help="print an admin token valid for 24 hours (printed unasked on the first start only)",
    )
    serve.add_argument(
        "--no-fast-paths",
        dest="fast_paths",
        action="store_const",
        const=False,
        help="take every library's documented way instead of the fast paths that lean on its "
        "internals (env STREAMSPACE_FAST_PATHS=0; default on)",
    )
    serve.add_argument(
        "--db-pool-size",
        type=int,
        metavar="N",
        help="PostgreSQL connections per process, for API, dispatch and listeners together "
        "(env STREAMSPACE_DB_POOL_SIZE; default 20, or maxsize= in the URL)",
    )

    migrate = commands.add_parser(
        "migrate",
        help="apply pending migrations and print what ran",
        description="Apply pending migrations to the database and print each one that ran. "
        "serve does this on start too.",
    )
    _add_data_dir(migrate)
    _add_database_url(migrate)

    token = commands.add_parser(
        "token",
        help="mint a bearer token signed with the data directory's secret",
        description="Print a bearer token for the server that uses the same data directory.",
        epilog=TOKEN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    token.add_argument(
        "--role",
        required=True,
        choices=[role.value for role in Role],
        help="admin: everything; user: browse, rate, review; platform: viewer, emitEvent",
    )
    token.add_argument("--subject", required=True, help="who the token names, e.g. alice")
    token.add_argument("--ttl", default="1h", help="lifetime such as 30m, 1h, 7d (default 1h)")
    _add_data_dir(token)

    commands.add_parser("schema", help="print the GraphQL schema (SDL)")
    _add_devkit(commands)
    return parser


def _add_devkit(commands: Any) -> None:
    plugin = commands.add_parser(
        "plugin",
        help="write, check and pack a plugin (new | validate | pack)",
        description="The plugin developer kit: scaffold a plugin, check it, pack its archive.",
    )
    actions = plugin.add_subparsers(dest="plugin_command", required=True, metavar="ACTION")
    new = actions.add_parser(
        "new",
        help="scaffold a plugin folder",
        description="Write NAME/ with plugin.json, plugin.py (an on_session_created hook), "
        "test_plugin.py (the SDK's testing harness) and README.md.",
    )
    new.add_argument("name", metavar="NAME", help="the plugin's name, e.g. streamspace-hello")
    new.add_argument("--dir", default=".", help="where to create the folder (default .)")
    validate = actions.add_parser(
        "validate",
        help="check a plugin folder; exit 1 on problems",
        description="Check plugin.json (required fields, semver, configSchema, permissions, "
        "category) and the entrypoint class against the SDK; print every problem with its path, "
        "and a warning for each setting whose key looks secret but is not marked secret. "
        "A plugin that fits is then loaded with its default configuration to list the HTTP "
        "routes it registers and the role each needs (or that it is public).",
    )
    validate.add_argument("path", metavar="PATH", help="the plugin's folder")
    pack = actions.add_parser(
        "pack",
        help="write <name>-<version>.tar.gz and print its sha256",
        description="Validate the plugin, then write a deterministic archive of it.",
    )
    pack.add_argument("path", metavar="PATH", help="the plugin's folder")
    pack.add_argument("--out", default=".", help="where to write the archive (default .)")

    repo = commands.add_parser(
        "repo",
        help="plugin repositories (index)",
        description="Build a plugin repository from packed archives.",
    )
    repo_actions = repo.add_subparsers(dest="repo_command", required=True, metavar="ACTION")
    index = repo_actions.add_parser(
        "index",
        help="write DIR/index.json from the archives in DIR",
        description="Read plugin.json from every *.tar.gz in DIR and write DIR/index.json "
        "(apiVersion 1), grouping versions per plugin. Serve DIR over http(s) or use its "
        "file:// URL as an INDEX repository (a server reads file:// repositories only under "
        "its data directory or --file-repository-roots).",
    )
    index.add_argument("dir", metavar="DIR", help="the folder of archives")
    index.add_argument("--name", help="the repository's name (default: the folder's name)")


def _shown_url(url: str) -> str:
    """The database URL with any password hidden, fit to print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _exit_after_shutdown(signum: int, frame: FrameType | None) -> None:
    """SIGTERM after uvicorn's graceful shutdown (it re-raises the signal) or before it ran.

    Without a handler the re-raised SIGTERM kills the process, so a clean stop would read as
    "killed by signal 15" to a process manager.
    """
    raise SystemExit(0)


def tune_collector() -> None:
    """Collect garbage as a server making many short-lived objects per request should.

    At the default young-generation threshold (700 allocations) a catalog page is collected
    several times over, about 3% of its time; and what start-up made (modules, schema) lives
    as long as the process, so it is frozen out of the collector's full passes.
    """
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def _serve(args: argparse.Namespace) -> int:
    # Whatever the server writes (database, plugin code, repositories) is its owner's alone.
    previous_umask = os.umask(PRIVATE_UMASK)
    try:
        return _run_server(args)
    finally:
        os.umask(previous_umask)


def _run_server(args: argparse.Namespace) -> int:
    import uvicorn

    from graph.app import create_app
    from graph.logs import configure_logging

    settings = Settings.load(
        data_dir=args.data_dir,
        database_url=args.database_url,
        broadcast_url=args.broadcast_url,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        log_format=args.log_format,
        delivery_max_attempts=args.delivery_max_attempts,
        delivery_backoff_base=args.delivery_backoff_base,
        db_pool_size=args.db_pool_size,
        workers_dispatch=args.workers_dispatch,
        allowed_networks=args.allowed_networks,
        file_repository_roots=args.file_repository_roots,
        fast_paths=args.fast_paths,
    )
    from models.database import normalise_url

    normalise_url(settings.database_url)  # refuses an unsupported scheme before anything starts
    if settings.log_level not in LOG_LEVELS:
        raise BadUserInput(
            f"log level {settings.log_level!r} is not one of {', '.join(LOG_LEVELS)}"
        )
    if settings.log_format not in {"json", "text"}:
        raise BadUserInput(f"log format {settings.log_format!r} is not json or text")
    configure_logging(settings.log_level, settings.log_format)
    _close_data_dir(settings)
    _print_banner(settings, print_admin_token=args.print_admin_token)
    server = uvicorn.Server(_uvicorn_config(create_app(settings), settings))
    tune_collector()
    previous = signal.signal(signal.SIGTERM, _exit_after_shutdown)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not server.started:
        logging.getLogger("graph.cli").error("the server did not start")
        return STARTUP_FAILURE
    return 0


def _close_data_dir(settings: Settings) -> None:
    """Take group and other permissions from a data directory found open, saying so."""
    for change in tighten_data_dir(settings.data_dir):
        logging.getLogger("graph.cli").warning(
            "data directory entry was open to other users; now owner-only",
            extra={
                "path": str(change.path),
                "was": f"{change.was:04o}",
                "now": f"{change.now:04o}",
            },
        )


def _print_banner(settings: Settings, *, print_admin_token: bool) -> None:
    """Where the server listens, and an admin token or how to get one."""
    url = f"http://{settings.host}:{settings.port}/graphql"
    print(f"StreamSpace Plugins on {url} (GraphiQL in a browser)", flush=True)
    print(f"  database:  {_shown_url(settings.database_url)}", flush=True)
    if settings.allowed_networks:
        networks = ", ".join(str(network) for network in settings.allowed_networks)
        print(f"  outgoing requests may also reach: {networks}", flush=True)
    data_dir = shlex.quote(str(settings.data_dir))
    # A token in the output lands in process managers' logs: only on the first start, when
    # there is no other way in yet, or when asked.
    if print_admin_token or settings.jwt_secret_created:
        admin = TokenIssuer(settings.jwt_secret).issue(Role.ADMIN, "admin", FIRST_ADMIN_TTL)
        print(f"  admin token (24h): {admin}", flush=True)
    else:
        secret = "" if settings.jwt_secret_generated else "STREAMSPACE_JWT_SECRET=… "
        print(
            f"  admin token: mint one with `{secret}streamspace-plugins token --role admin"
            f" --subject NAME --data-dir {data_dir}`, or start with --print-admin-token",
            flush=True,
        )
    print(
        "  more tokens: streamspace-plugins token --role admin|user|platform --subject NAME"
        f" --data-dir {data_dir}",
        flush=True,
    )


def _uvicorn_config(app: Starlette, settings: Settings) -> uvicorn.Config:
    import uvicorn

    from graph._fast.websocket_frames import FrameWritingProtocol
    from graph.transport.header_limits import HeaderLimitedProtocol

    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        # uvicorn's httptools protocol, with a time and size limit on a request's headers.
        http=HeaderLimitedProtocol.limited(
            header_timeout=settings.header_timeout, max_header_bytes=settings.max_header_bytes
        ),
        # uvicorn's default WebSocket protocol, letting subscriptions write prepared frames
        # (unless the fast paths are off); messages capped small until connection_init
        # authenticates, then as HTTP bodies are.
        ws=FrameWritingProtocol.capped_before_init(
            settings.ws_init_max_bytes, frames=settings.fast_paths
        ),
        ws_max_size=settings.max_body_bytes,
        timeout_keep_alive=settings.keep_alive_timeout,
        # Past this many connections and requests at once, a new request is answered 503.
        limit_concurrency=settings.max_concurrency,
        # WebSockets are closed (1012) at once; in-flight requests get this long to finish.
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )


def _migrate(args: argparse.Namespace) -> int:
    from models import migrate_database

    settings = Settings.load(data_dir=args.data_dir, database_url=args.database_url)
    create_private_dir(settings.data_dir)
    print(f"database: {_shown_url(settings.database_url)}")
    applied = asyncio.run(migrate_database(settings.database_url, secret_key=settings.secret_key))
    for name in applied:
        print(f"applied {name}")
    if applied:
        print(f"{len(applied)} migration(s) applied; the database is up to date")
    else:
        print("nothing to apply; the database is up to date")
    return 0


def _token(args: argparse.Namespace) -> int:
    ttl = parse_ttl(args.ttl)
    check_subject(args.subject)  # before the data directory's secrets are made
    settings = Settings.load(data_dir=args.data_dir)
    print(TokenIssuer(settings.jwt_secret).issue(Role(args.role), args.subject, ttl))
    return 0


def _schema(args: argparse.Namespace) -> int:
    from graph.schema import schema

    print(schema.as_str())
    return 0


def _progress(message: str) -> None:
    print(message, flush=True)


def _plugin(args: argparse.Namespace) -> int:
    from pathlib import Path

    from runtime.devkit.packing import pack_plugin
    from runtime.devkit.scaffold import ScaffoldError, scaffold
    from runtime.devkit.validate import list_routes, plugin_warnings, validate_plugin

    if args.plugin_command == "new":
        try:
            folder = scaffold(args.name, Path(args.dir))
        except ScaffoldError as error:
            raise BadUserInput(str(error)) from None
        for path in sorted(folder.iterdir()):
            print(f"created {path}")
        where = shlex.quote(str(folder))
        print(f"next: cd {where} && pytest && streamspace-plugins plugin validate .")
        return 0
    folder = Path(args.path)
    print(f"validating {folder}", flush=True)
    problems = validate_plugin(folder)
    for problem in problems:
        print(f"  {problem}", flush=True)
    # Warnings do not fail validation: the author decides whether the setting is a secret.
    for warning in plugin_warnings(folder):
        print(f"  warning: {warning}", flush=True)
    if problems:
        print(f"{len(problems)} problem(s) in {folder}", file=sys.stderr)
        return 1
    print("ok: the manifest and the class fit the SDK", flush=True)
    if args.plugin_command == "validate":
        for line in asyncio.run(list_routes(folder)).lines():
            print(line, flush=True)
        return 0
    packed = pack_plugin(folder, Path(args.out), progress=_progress)
    print(f"wrote {packed.path}")
    print(f"sha256 {packed.sha256}")
    return 0


def _repo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from runtime.devkit.packing import write_index

    folder = Path(args.dir)
    if not folder.is_dir():
        raise BadUserInput(f"{folder} is not a folder")
    index = write_index(folder, name=args.name, progress=_progress)
    versions = sum(len(plugin["versions"]) for plugin in index["plugins"])
    print(
        f"wrote {folder / 'index.json'}: {len(index['plugins'])} plugin(s), {versions} version(s)"
    )
    return 0


COMMANDS = {
    "serve": _serve,
    "migrate": _migrate,
    "token": _token,
    "schema": _schema,
    "plugin": _plugin,
    "repo": _repo,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except BadUserInput as error:
        print(f"streamspace-plugins {args.command}: {error.message}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as error:
        # Bad settings (a malformed number or URL in the environment, an empty secret file, an
        # unwritable data directory): say what is wrong without a traceback.
        print(f"streamspace-plugins {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

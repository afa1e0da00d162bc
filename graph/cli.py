"""The `streamspace-plugins` command line.

Every flag also reads an environment variable (shown in --help); flags win.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import timedelta

from runtime.auth import Role, TokenIssuer, parse_ttl
from runtime.errors import BadUserInput
from runtime.settings import Settings

DESCRIPTION = """\
StreamSpace Plugins: the plugin platform of StreamSpace, served over GraphQL.

Start a server on the embedded default (SQLite in the data directory, in-process broadcast):
  streamspace-plugins serve
then open http://127.0.0.1:8080/graphql and send the admin token it prints as
  {"Authorization": "Bearer <token>"}
"""

FIRST_ADMIN_TTL = timedelta(hours=24)


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

    serve = commands.add_parser("serve", help="run the server (applies pending migrations first)")
    serve.add_argument(
        "--host", help="address to listen on (env STREAMSPACE_HOST, default 127.0.0.1)"
    )
    serve.add_argument("--port", type=int, help="port (env STREAMSPACE_PORT, default 8080)")
    _add_data_dir(serve)
    _add_database_url(serve)
    serve.add_argument(
        "--broadcast-url",
        help="memory:// (default), redis://HOST:PORT or postgres://… (env STREAMSPACE_BROADCAST_URL)",
    )
    serve.add_argument(
        "--log-level", help="DEBUG, INFO, WARNING, ERROR (env STREAMSPACE_LOG_LEVEL)"
    )
    serve.add_argument("--log-format", choices=["json", "text"], help="env STREAMSPACE_LOG_FORMAT")
    serve.add_argument(
        "--delivery-max-attempts",
        type=int,
        help="attempts before a delivery is DEAD (env STREAMSPACE_DELIVERY_MAX_ATTEMPTS, default 8)",
    )
    serve.add_argument(
        "--delivery-backoff-base",
        type=float,
        help="seconds; retry n waits up to base*2^(n-1), with full jitter "
        "(env STREAMSPACE_DELIVERY_BACKOFF_BASE, default 2)",
    )

    migrate = commands.add_parser("migrate", help="apply pending migrations and print what ran")
    _add_data_dir(migrate)
    _add_database_url(migrate)

    token = commands.add_parser(
        "token", help="mint a bearer token signed with the data directory's secret"
    )
    token.add_argument("--role", required=True, choices=[role.value for role in Role])
    token.add_argument("--subject", required=True, help="who the token names, e.g. alice")
    token.add_argument("--ttl", default="1h", help="lifetime such as 30m, 1h, 7d (default 1h)")
    _add_data_dir(token)

    commands.add_parser("schema", help="print the GraphQL schema (SDL)")
    return parser


def _serve(args: argparse.Namespace) -> int:
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
    )
    configure_logging(settings.log_level, settings.log_format)
    url = f"http://{settings.host}:{settings.port}/graphql"
    print(f"StreamSpace Plugins on {url} (GraphiQL in a browser)", flush=True)
    print(f"  database:  {settings.database_url}", flush=True)
    if settings.jwt_secret_generated:
        admin = TokenIssuer(settings.jwt_secret).issue(Role.ADMIN, "admin", FIRST_ADMIN_TTL)
        print(f"  admin token (24h): {admin}", flush=True)
    print(
        "  more tokens: streamspace-plugins token --role admin|user|platform --subject NAME"
        f" --data-dir {settings.data_dir}",
        flush=True,
    )
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    uvicorn.Server(config).run()
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from models import migrate_database

    settings = Settings.load(data_dir=args.data_dir, database_url=args.database_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    applied = asyncio.run(migrate_database(settings.database_url))
    for name in applied:
        print(f"applied {name}")
    print("database is up to date" if not applied else f"{len(applied)} migration(s) applied")
    return 0


def _token(args: argparse.Namespace) -> int:
    settings = Settings.load(data_dir=args.data_dir)
    print(
        TokenIssuer(settings.jwt_secret).issue(Role(args.role), args.subject, parse_ttl(args.ttl))
    )
    return 0


def _schema(args: argparse.Namespace) -> int:
    from graph.schema import schema

    print(schema.as_str())
    return 0


COMMANDS = {"serve": _serve, "migrate": _migrate, "token": _token, "schema": _schema}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except BadUserInput as error:
        print(f"streamspace-plugins {args.command}: {error.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

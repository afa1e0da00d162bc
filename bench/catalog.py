"""Catalog: a search sorted by rating over 10,000 entries, against `{ viewer { subject } }`.

    .venv/bin/python -m bench.catalog [--plugins 10000] [--repetitions 3] [--postgres URL]

Issue 8, scenario 4. Before the server starts, its database (the one `serve --data-dir D`
uses, or a fresh PostgreSQL database) is migrated and seeded directly through the models:
`--plugins` catalog entries in an index repository of their own, `bench` (`bench-plugin-<n>`,
tags, one version, stats; never synced, so they stay available) with ratings
(`--ratings-per-plugin` PluginRating rows each, avg_rating/rating_count filled in). Then:

- SQL statements per request, in-process: the production schema executes the catalog query
  at page sizes 5 and 20 with the QueryCounter approach of tests/conftest.py (a handler on the
  `tortoise.db_client` logger at DEBUG) - constant in the page size is the target;
- the server is started exactly as `serve` runs it and must serve a page of 20 entries;
  the load generator (`bench.load`, its own process, concurrency `--concurrency`, 1 by
  default so that p50 is a service time) times
  `catalog(filter:{search:"bench"}, sort:RATING, first:20)` and `{ viewer { subject } }`,
  alternating their order; figures are medians of the repetitions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import random
import statistics
import sys
from pathlib import Path
from typing import Any

import aiohttp

from bench.emit import (
    HOST,
    BenchError,
    Processes,
    free_port,
    mint_token,
    postgres_databases,
    run_load,
    run_measured,
    serve_command,
    wait_ready,
)

SEARCH = "bench"
PAGE_QUERY = (
    'query($first: Int) { catalog(filter: {search: "bench"}, sort: RATING, first: $first) '
    "{ edges { node { id name version avgRating ratingCount } } } }"
)


class QueryCounter(logging.Handler):
    """Counts the SQL statements Tortoise sends while it is attached (as tests/conftest.py)."""

    VERBS = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.statements: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        sql = record.args[0] if isinstance(record.args, tuple) and record.args else record.msg
        if isinstance(sql, str) and sql.lstrip().upper().startswith(self.VERBS):
            self.statements.append(sql)


@contextlib.contextmanager
def counting() -> Any:
    logger = logging.getLogger("tortoise.db_client")
    counter = QueryCounter()
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(counter)
    try:
        yield counter
    finally:
        logger.removeHandler(counter)
        logger.setLevel(previous)


async def seed(database_url: str, plugins: int, ratings_per_plugin: int) -> None:
    from models import (
        CatalogPlugin,
        CatalogTag,
        PluginRating,
        PluginStats,
        PluginVersion,
        Repository,
        close_database,
        init_database,
        migrate_database,
    )
    from runtime.catalog.browse import search_text
    from runtime.catalog.repositories import RepositoryType, refresh_catalog_statistics

    await migrate_database(database_url)
    await init_database(database_url)
    try:
        # Not the builtin repository: the server's start makes that one list exactly the
        # plugins it can run, which would mark every seeded entry unavailable.
        repository = await Repository.create(
            name="bench",
            url="file:///nonexistent/bench-index.json",
            type=RepositoryType.INDEX.value,
            description="catalog benchmark entries",
        )
        rng = random.Random(8)
        chunk = 1000
        for start in range(0, plugins, chunk):
            rows = []
            for n in range(start, min(plugins, start + chunk)):
                name = f"bench-plugin-{n}"
                display = f"Bench Plugin {n}"
                description = f"Benchmark catalog entry number {n}"
                tags = ["bench", f"group-{n % 50}"]
                scores = [rng.randint(1, 5) for _ in range(ratings_per_plugin)]
                rows.append(
                    CatalogPlugin(
                        repository_id=repository.id,
                        name=name,
                        version="1.0.0",
                        display_name=display,
                        description=description,
                        category="testing",
                        plugin_type="extension",
                        manifest={"name": name, "version": "1.0.0", "type": "extension"},
                        tags=tags,
                        install_count=rng.randint(0, 1000),
                        avg_rating=sum(scores) / len(scores) if scores else 0.0,
                        rating_count=len(scores),
                        search_text=search_text(name, display, description, tags),
                    )
                )
            await CatalogPlugin.bulk_create(rows)
            created = await CatalogPlugin.filter(
                name__in=[row.name for row in rows], repository_id=repository.id
            ).values("id", "name", "avg_rating", "rating_count")
            await CatalogTag.bulk_create(
                [CatalogTag(plugin_id=c["id"], tag="bench") for c in created]
                + [
                    CatalogTag(
                        plugin_id=c["id"], tag=f"group-{int(c['name'].rsplit('-', 1)[1]) % 50}"
                    )
                    for c in created
                ]
            )
            await PluginVersion.bulk_create(
                [
                    PluginVersion(
                        plugin_id=c["id"],
                        version="1.0.0",
                        manifest={"name": c["name"], "version": "1.0.0", "type": "extension"},
                    )
                    for c in created
                ]
            )
            await PluginStats.bulk_create([PluginStats(plugin_id=c["id"]) for c in created])
            ratings = []
            for c in created:
                for user in range(c["rating_count"]):
                    ratings.append(
                        PluginRating(plugin_id=c["id"], user_id=f"user-{user}", rating=3)
                    )
            await PluginRating.bulk_create(ratings)
        # As a sync of this size does: the database plans from fresh statistics.
        await refresh_catalog_statistics()
    finally:
        await close_database()


async def statements_per_request(database_url: str, data_dir: Path) -> dict[int, int]:
    """SQL statements of the catalog query at page sizes 5 and 20, in-process."""
    from graph.app import build_services
    from graph.context import Context
    from graph.schema import schema
    from models import close_database, init_database
    from runtime.core.auth import Role
    from runtime.core.settings import Settings

    settings = Settings.load(data_dir=str(data_dir), database_url=database_url)
    services = build_services(settings)
    await init_database(database_url)
    counts: dict[int, int] = {}
    try:
        for first in (5, 20, 20):
            context = Context(services=services, request=None, response=None)
            token = services.tokens.issue(Role.USER, "bench-user")
            context.authenticate(services.tokens.verify(token))
            with counting() as counter:
                result = await schema.execute(
                    PAGE_QUERY, variable_values={"first": first}, context_value=context
                )
            if result.errors:
                raise BenchError(f"catalog query failed: {result.errors}")
            edges = result.data["catalog"]["edges"] if result.data else []
            if len(edges) != first:
                raise BenchError(f"catalog page of {first} returned {len(edges)} entries")
            counts[first] = len(counter.statements)  # the second run of 20 (warm) wins
    finally:
        await close_database()
    return counts


async def check_page(session: aiohttp.ClientSession, url: str, token: str) -> None:
    """The served page must hold 20 entries: timing an empty search would measure nothing."""
    async with session.post(
        url,
        json={"query": PAGE_QUERY, "variables": {"first": 20}},
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        body = await response.json()
    edges = ((body.get("data") or {}).get("catalog") or {}).get("edges")
    if not isinstance(edges, list) or len(edges) != 20:
        found = len(edges) if isinstance(edges, list) else body.get("errors")
        raise BenchError(f"the served catalog page holds {found} entries, not 20")


async def bench(args: argparse.Namespace, processes: Processes, work: Path) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as stack:
        database_url: str | None = None
        if args.postgres:
            database_url = (await stack.enter_async_context(postgres_databases(args.postgres, 1)))[
                0
            ]
        stack.callback(processes.stop_all)
        data_dir = work / "server"
        data_dir.mkdir(parents=True, exist_ok=True)
        from runtime.core.settings import Settings

        url = Settings.load(data_dir=str(data_dir), database_url=database_url).database_url
        print(f"[catalog] seeding {args.plugins} catalog plugins with ratings", flush=True)
        await seed(url, args.plugins, args.ratings_per_plugin)
        statements = await statements_per_request(url, data_dir)
        print(f"  SQL statements per catalog request by page size: {statements}", flush=True)

        session = await stack.enter_async_context(aiohttp.ClientSession())
        port = free_port()
        base = f"http://{HOST}:{port}"
        flags = ["--host", HOST, "--port", str(port), "--data-dir", str(data_dir)]
        if database_url:
            flags += ["--database-url", database_url]
        if args.broadcast_url:
            flags += ["--broadcast-url", args.broadcast_url]
        server = processes.start("catalog-server", [*serve_command(), "serve", *flags])
        await wait_ready(session, server, f"{base}/readyz", args.ready_timeout)
        token = mint_token("user", "bench-user", data_dir)
        await check_page(session, f"{base}/graphql", token)

        runs: dict[str, list[dict[str, Any]]] = {"catalog": [], "viewer": []}
        for repetition in range(args.repetitions):
            order = ("catalog", "viewer") if repetition % 2 == 0 else ("viewer", "catalog")
            for kind in order:
                result = await run_load(kind, f"{base}/graphql", token, args)
                runs[kind].append(result)
                print(
                    f"  rep {repetition + 1} {kind:<8} {result['rate']:8.1f}/s  "
                    f"p50 {result['latency_p50_ms']} ms  p99 {result['latency_p99_ms']} ms",
                    flush=True,
                )

    catalog = float(statistics.median(r["latency_p50_ms"] for r in runs["catalog"]))
    viewer = float(statistics.median(r["latency_p50_ms"] for r in runs["viewer"]))
    return {
        "rows": [
            {
                "scenario": f"catalog search, RATING, first 20, {args.plugins} entries (p50 ms)",
                "value": catalog,
                "baseline": "{ viewer { subject } } (p50 ms)",
                "baseline_value": viewer,
                "ratio": catalog / viewer,
                "target": "<= 2",
            },
            {
                "scenario": "catalog SQL statements per request (first 20)",
                "value": float(statements[20]),
                "baseline": "the same at first 5",
                "baseline_value": float(statements[5]),
                "ratio": statements[20] / statements[5],
                "target": "= 1 and <= 4 statements",
                "met": statements[20] == statements[5] and statements[20] <= 4,
            },
        ],
        "statements_by_page_size": statements,
        "parameters": {
            "plugins": args.plugins,
            "ratings_per_plugin": args.ratings_per_plugin,
            "repetitions": args.repetitions,
            "concurrency": args.concurrency,
            "warmup_seconds": args.warmup,
            "window_seconds": args.duration,
        },
        "runs": runs,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plugins", type=int, default=10000)
    parser.add_argument("--ratings-per-plugin", type=int, default=3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    parser.add_argument("--postgres", metavar="URL")
    parser.add_argument("--broadcast-url")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--ready-timeout", type=float, default=90.0)
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    report, code = run_measured(
        "catalog", args.keep_logs, lambda processes, work: bench(args, processes, work)
    )
    if report is None:
        return code
    print(json.dumps(report["rows"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

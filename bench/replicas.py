"""End-to-end events/s (emitEvent → webhook receiver) through two replicas against one.

    .venv/bin/python -m bench.replicas
    .venv/bin/python -m bench.replicas --postgres postgres://postgres@127.0.0.1:5432/postgres \\
        --events 3000 --concurrency 32

Two configurations, both running for the whole run and measured in the same run:
- "1 replica": one server on its own fresh PostgreSQL database and its own redis-server;
- "2 replicas": two servers sharing another fresh database and another redis-server.

Each measurement emits `--events` events (`session.created`, `wait: false`) from a load generator
in a process of its own (`python -m bench.replicas --load-generator ...`), spreading requests
round-robin over the configuration's servers at a fixed concurrency, and times from the first
request until the webhook receiver (`bench.receiver`) has counted every one of them. Repetitions
(3 by default, order alternated) give medians. Every process binds 127.0.0.1 and is ended (by its
own process group) when the run ends; the databases are dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from bench.emit import (
    HOST,
    RESULTS,
    BenchError,
    Processes,
    child_env,
    free_port,
    graphql,
    install_webhook,
    median,
    mint_token,
    postgres_databases,
    receiver_hits,
    run_measured,
    serve_command,
    wait_ready,
)

ROOT = Path(__file__).resolve().parents[1]
EMIT_QUERY = "mutation Emit($input: EmitEventInput!) { emitEvent(input: $input) { event { id } } }"
CONFIGURATIONS = {"1 replica": 1, "2 replicas": 2}


# -- the load generator (its own process) ----------------------------------------------------------


async def generate(urls: list[str], token: str, events: int, concurrency: int, prefix: str) -> Any:
    """Emit `events` events over `urls` round-robin; report when it started and how it went."""
    head = orjson.dumps({"query": EMIT_QUERY})[:-1] + b',"variables":{"input":'
    headers = {"content-type": "application/json", "authorization": f"Bearer {token}"}
    state = {"next": 0, "ok": 0, "errors": 0}
    sample: list[str] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=60)
    ) as session:

        async def worker() -> None:
            while state["next"] < events:
                n = state["next"]
                state["next"] = n + 1
                payload = {"id": f"s-{prefix}{n}", "user": "ann", "template": "firefox"}
                body = head + orjson.dumps({"type": "session.created", "payload": payload})
                try:
                    async with session.post(
                        urls[n % len(urls)], data=body + b"}}", headers=headers
                    ) as response:
                        data = await response.read()
                        good = response.status == 200 and b'"errors"' not in data
                        if not good and not sample:
                            sample.append(f"HTTP {response.status}: {data[:300]!r}")
                except (aiohttp.ClientError, TimeoutError) as error:
                    good = False
                    if not sample:
                        sample.append(f"{type(error).__name__}: {error}")
                state["ok" if good else "errors"] += 1

        started = time.time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        finished = time.time()
    return {
        "started": started,
        "emit_seconds": finished - started,
        "ok": state["ok"],
        "errors": state["errors"],
        "sample_error": sample[0] if sample else None,
    }


async def run_generator(
    urls: list[str], token: str, args: argparse.Namespace, prefix: str
) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "bench.replicas", "--load-generator", "--urls", ",".join(urls),
        "--token", token, "--events", str(args.events), "--concurrency", str(args.concurrency),
        "--prefix", prefix,
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=ROOT,
        env=child_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), args.drain_timeout)
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    if process.returncode != 0:
        raise BenchError(f"load generator failed: {err.decode()[-2000:]}")
    result = dict(json.loads(out.decode().strip().splitlines()[-1]))
    if result["errors"]:
        raise BenchError(f"{result['errors']} emits failed, e.g. {result['sample_error']}")
    return result


# -- the run ---------------------------------------------------------------------------------------


def start_redis(processes: Processes, name: str, work: Path) -> tuple[str, int]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise BenchError("redis-server is not installed")
    port = free_port()
    directory = work / name
    directory.mkdir()
    options = {"--bind": HOST, "--port": str(port), "--save": "", "--appendonly": "no"}
    options["--dir"] = str(directory)
    processes.start(name, [binary, *(part for pair in options.items() for part in pair)])
    return f"redis://{HOST}:{port}", port


async def redis_ready(port: int, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(b"PING\r\n")
            answer = await reader.read(16)
            writer.close()
            if answer.startswith(b"+PONG"):
                return
        if time.monotonic() > deadline:
            raise BenchError(f"redis-server on {port} did not answer")
        await asyncio.sleep(0.05)


async def loaded_on(session: aiohttp.ClientSession, base: str, within: float = 60) -> None:
    """Until the server at `base` reports the webhook plugin loaded and ACTIVE."""
    deadline = time.monotonic() + within
    while True:
        async with session.get(f"{base}/metrics") as response:
            if 'streamspace_plugins_loaded{status="ACTIVE"} 1.0' in await response.text():
                return
        if time.monotonic() > deadline:
            raise BenchError(f"{base} never loaded the webhook plugin")
        await asyncio.sleep(0.1)


async def measure(
    session: aiohttp.ClientSession,
    urls: list[str],
    token: str,
    count_url: str,
    args: argparse.Namespace,
    prefix: str,
) -> dict[str, Any]:
    before = await receiver_hits(session, count_url)
    generator = asyncio.create_task(run_generator(urls, token, args, prefix))
    expected = before + args.events
    deadline = time.monotonic() + args.drain_timeout
    hits = before
    while hits < expected:
        if generator.done() and generator.exception() is not None:
            await generator
        if time.monotonic() > deadline:
            generator.cancel()
            raise BenchError(f"{expected - hits} deliveries missing after {args.drain_timeout}s")
        await asyncio.sleep(0.02)
        hits = await receiver_hits(session, count_url)
    delivered_at = time.time()
    load = await generator
    seconds = delivered_at - load["started"]
    return {
        "events": args.events,
        "seconds": round(seconds, 3),
        "rate": args.events / seconds,
        "emit_seconds": round(load["emit_seconds"], 3),
        "emit_rate": args.events / load["emit_seconds"],
        "extra_hits": hits - expected,
    }


async def bench(args: argparse.Namespace, processes: Processes, work: Path) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as stack:
        databases = list(await stack.enter_async_context(postgres_databases(args.postgres, 2)))
        stack.callback(processes.stop_all)  # servers stop before their databases are dropped
        session = await stack.enter_async_context(aiohttp.ClientSession())

        receiver_port = free_port()
        hook_url = f"http://{HOST}:{receiver_port}/hook"
        count_url = f"http://{HOST}:{receiver_port}/count"
        receiver = processes.start(
            "receiver", [sys.executable, "-m", "bench.receiver", "--port", str(receiver_port)]
        )
        await wait_ready(session, receiver, count_url, 30)

        servers: dict[str, list[str]] = {}
        tokens: dict[str, str] = {}
        for index, (name, replicas) in enumerate(CONFIGURATIONS.items()):
            broadcast, redis_port = start_redis(processes, f"redis-{replicas}", work)
            await redis_ready(redis_port)
            data_dir = work / f"data-{replicas}"
            bases = []
            for replica in range(replicas):
                port = free_port()
                flags = ["--host", HOST, "--port", str(port), "--data-dir", str(data_dir)]
                flags += ["--database-url", databases[index], "--broadcast-url", broadcast]
                proc = processes.start(
                    f"server-{replicas}-{replica}", [*serve_command(), "serve", *flags]
                )
                base = f"http://{HOST}:{port}"
                # One at a time: the first applies the migrations.
                await wait_ready(session, proc, f"{base}/readyz", args.ready_timeout)
                bases.append(base)
            admin = mint_token("admin", "bench-admin", data_dir)
            tokens[name] = mint_token("platform", "bench-platform", data_dir)
            await install_webhook(session, f"{bases[0]}/graphql", admin, hook_url)
            for base in bases:
                await loaded_on(session, base)
            servers[name] = [f"{base}/graphql" for base in bases]
        print(
            f"receiver, {sum(CONFIGURATIONS.values())} servers and 2 redis-servers ready; "
            f"{args.repetitions} x {args.events} events per configuration at concurrency "
            f"{args.concurrency}",
            flush=True,
        )

        # A warm-up round each, not counted.
        for name in CONFIGURATIONS:
            warm = argparse.Namespace(**{**vars(args), "events": min(200, args.events)})
            await measure(session, servers[name], tokens[name], count_url, warm, f"warm-{name}-")

        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONFIGURATIONS}
        names = list(CONFIGURATIONS)
        for repetition in range(args.repetitions):
            order = names if repetition % 2 == 0 else names[::-1]
            for name in order:
                prefix = f"{repetition}-{name[0]}-"
                result = await measure(
                    session, servers[name], tokens[name], count_url, args, prefix
                )
                runs[name].append(result)
                print(
                    f"  rep {repetition + 1} {name:<10} {result['rate']:8.1f} events/s end to end"
                    f"  ({result['events']} in {result['seconds']:.2f}s;"
                    f" emits alone {result['emit_rate']:.1f}/s)",
                    flush=True,
                )

        unfinished: dict[str, Any] = {}
        for name in CONFIGURATIONS:
            admin = mint_token("admin", "bench-admin", work / f"data-{CONFIGURATIONS[name]}")
            left = await graphql(
                session,
                servers[name][0],
                admin,
                "query { "
                + " ".join(
                    f"{s.lower()}: deliveries(filter: {{status: {s}}}, first: 3) {{ edges "
                    "{ node { id status } } }"
                    for s in ("PENDING", "RUNNING", "RETRYING", "DEAD")
                )
                + " }",
            )
            stuck = {s: c["edges"] for s, c in left.items() if c["edges"]}
            if stuck:
                unfinished[name] = stuck
                print(f"  warning: {name}: deliveries not SUCCEEDED: {stuck}", file=sys.stderr)

    one = median([r["rate"] for r in runs["1 replica"]])
    two = median([r["rate"] for r in runs["2 replicas"]])
    rows = [
        {"configuration": name, "replicas": CONFIGURATIONS[name],
         "rate": median([r["rate"] for r in runs[name]]),
         "emit_rate": median([r["emit_rate"] for r in runs[name]]),
         "ratio": median([r["rate"] for r in runs[name]]) / one}
        for name in CONFIGURATIONS
    ]  # fmt: skip
    return {
        "benchmark": "replicas",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "parameters": {
            "repetitions": args.repetitions,
            "events": args.events,
            "concurrency": args.concurrency,
            "database": "postgresql",
            "broadcast": "redis (one redis-server per configuration)",
        },
        "rows": rows,
        "two_vs_one": two / one,
        "per_repetition_ratio": [
            t["rate"] / o["rate"]
            for t, o in zip(runs["2 replicas"], runs["1 replica"], strict=True)
        ],
        "runs": runs,
        "unfinished_deliveries_sample": unfinished,
    }


def format_table(report: dict[str, Any]) -> str:
    header = ("configuration", "events/s end to end", "emitEvent/s", "vs 1 replica")
    lines = [
        (r["configuration"], f"{r['rate']:.1f}", f"{r['emit_rate']:.1f}", f"{r['ratio']:.2f}x")
        for r in report["rows"]
    ]
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]

    def fmt(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(widths[i]) if i else c.ljust(widths[i]) for i, c in enumerate(cells)
        )

    p = report["parameters"]
    title = (
        f"replicas benchmark: emitEvent -> webhook receiver, PostgreSQL + Redis "
        f"(median of {p['repetitions']}, {p['events']} events, concurrency {p['concurrency']}, "
        f"{report['host']['cpus']} CPUs)"
    )
    rule = "-" * len(fmt(header))
    return "\n".join([title, rule, fmt(header), rule, *[fmt(line) for line in lines], rule])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.replicas",
        description="end-to-end events/s (emit -> webhook receiver) through 2 replicas vs 1",
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        default="postgres://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server URL; two fresh databases are created there and dropped",
    )
    parser.add_argument("--repetitions", type=int, default=3, help="at least 3 (default 3)")
    parser.add_argument("--events", type=int, default=2000, help="events per measurement")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--drain-timeout", type=float, default=180.0)
    parser.add_argument("--ready-timeout", type=float, default=90.0)
    parser.add_argument("--out", type=Path, default=RESULTS / "replicas.json")
    parser.add_argument("--keep-logs", action="store_true")
    # The load generator's own process.
    parser.add_argument("--load-generator", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--urls", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.load_generator:
        if args.repetitions < 3:
            parser.error("--repetitions: a figure is the median of at least 3")
        if urlsplit(args.postgres).hostname not in {"127.0.0.1", "localhost", "::1"}:
            parser.error("--postgres must point at this machine")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.load_generator:
        result = asyncio.run(
            generate(args.urls.split(","), args.token, args.events, args.concurrency, args.prefix)
        )
        print(json.dumps(result))
        return 0

    report, code = run_measured(
        "replicas", args.keep_logs, lambda processes, work: bench(args, processes, work)
    )
    if report is None:
        return code
    print()
    print(format_table(report))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""End-to-end latency: a steady event rate with pluginEvents subscribers, against a no-op mutation.

    .venv/bin/python -m bench.latency [--rate 200] [--subscribers 100] [--duration 5]

Issue 8, scenario 2. Processes (127.0.0.1 only, all ended at the end): the server (`serve`),
the baseline server (`bench.baseline_server`), the webhook receiver, and a subscriber process
(`python -m bench.latency --subscribers-process ...`, aiohttp) holding `--subscribers`
graphql-transport-ws connections, each subscribed to
`pluginEvents(filter: {status: SUCCEEDED})`. The built-in streamspace-webhook is installed and
enabled, as in bench.emit.

A repetition starts the subscriber process, waits until the server's
`streamspace_subscribers` gauge shows every subscription, then this process emits
`session.created` at a steady `--rate` (open loop: one request per 1/rate s, whatever the
responses do) for `--duration` s; each payload carries the wall-clock send time, and every
subscriber records (receive time - send time) of every SUCCEEDED outcome. p50/p99 are over all
(event, subscriber) pairs. The baseline is the round trip of `mutation { noop }` on the
baseline server at the same steady rate. Figures are medians of the repetitions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.emit import (
    HOST,
    ROOT,
    BenchError,
    Processes,
    check_delivery,
    child_env,
    free_port,
    install_webhook,
    mint_token,
    postgres_databases,
    run_measured,
    serve_command,
    wait_ready,
)
from bench.load import EMIT_QUERY, NOOP_QUERY

SUBSCRIPTION = (
    "subscription { pluginEvents(filter: {status: SUCCEEDED}) { status event { payload } } }"
)


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- the subscriber process -----------------------------------------------------------------


async def subscribers_process(args: argparse.Namespace) -> dict[str, Any]:
    latencies: list[float] = []
    received = 0
    done = asyncio.Event()

    async def one(session: aiohttp.ClientSession, ready: asyncio.Event) -> None:
        nonlocal received
        async with session.ws_connect(
            args.ws_url, protocols=("graphql-transport-ws",), max_msg_size=0
        ) as ws:
            await ws.send_json(
                {"type": "connection_init", "payload": {"Authorization": f"Bearer {args.token}"}}
            )
            ack = await ws.receive_json(timeout=30)
            if ack.get("type") != "connection_ack":
                raise RuntimeError(f"no connection_ack: {ack}")
            await ws.send_json({"id": "o", "type": "subscribe", "payload": {"query": SUBSCRIPTION}})
            ready.set()
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                now = time.time()
                data = orjson.loads(message.data)
                if data.get("type") == "next":
                    payload = data["payload"]["data"]["pluginEvents"]["event"]["payload"]
                    sent = payload.get("sentAt")
                    if sent is not None:
                        latencies.append(now - float(sent))
                        received += 1
                        if received >= args.expect:
                            done.set()
                elif data.get("type") == "ping":
                    await ws.send_json({"type": "pong"})
                elif data.get("type") == "error":
                    raise RuntimeError(f"subscription error: {data}")

    async with aiohttp.ClientSession() as session:
        readies = [asyncio.Event() for _ in range(args.count)]
        tasks = [asyncio.create_task(one(session, ready)) for ready in readies]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
        print("subscribed", flush=True)
        # The orchestrator writes the number to expect on stdin once the emits are done.
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        args.expect = int(line.strip() or "0")
        if received >= args.expect:
            done.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), args.timeout)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {"received": received, "latencies_ms": [round(x * 1000, 3) for x in latencies]}


# -- the orchestrator -----------------------------------------------------------------------


async def steady(
    session: aiohttp.ClientSession,
    url: str,
    token: str,
    rate: float,
    duration: float,
    body_of: Any,
) -> tuple[list[float], int]:
    """Open-loop requests at `rate`/s for `duration` s: (round trips in s, failures)."""
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    round_trips: list[float] = []
    failures = 0

    async def one(n: int) -> None:
        nonlocal failures
        started = time.perf_counter()
        async with session.post(url, data=body_of(n), headers=headers) as response:
            data = await response.read()
        if response.status != 200 or b'"errors"' in data:
            failures += 1
            return
        round_trips.append(time.perf_counter() - started)

    total = int(rate * duration)
    begin = time.perf_counter()
    tasks = []
    for n in range(total):
        delay = begin + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n)))
    results = await asyncio.gather(*tasks, return_exceptions=True)
    failures += sum(1 for r in results if isinstance(r, BaseException))
    return round_trips, failures


async def subscriber_gauge(session: aiohttp.ClientSession, base: str) -> int:
    async with session.get(f"{base}/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith("streamspace_subscribers "):
            return int(float(line.split()[1]))
    return 0


async def one_repetition(
    args: argparse.Namespace,
    session: aiohttp.ClientSession,
    main_url: str,
    admin: str,
    platform: str,
    repetition: int,
) -> dict[str, Any]:
    before = await subscriber_gauge(session, main_url)
    command = [
        sys.executable, "-m", "bench.latency", "--subscribers-process",
        "--ws-url", f"ws://{HOST}:{main_url.rsplit(':', 1)[1]}/graphql", "--token", admin,
        "--count", str(args.subscribers), "--timeout", str(args.drain_timeout),
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=ROOT,
        env=child_env(),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None and process.stdin is not None
        line = await asyncio.wait_for(process.stdout.readline(), 90)
        if line.strip() != b"subscribed":
            raise BenchError(
                f"subscribers failed: {(await process.stderr.read()).decode()[-2000:]}"
            )  # type: ignore[union-attr]
        deadline = time.monotonic() + 30
        while await subscriber_gauge(session, main_url) < before + args.subscribers:
            if time.monotonic() > deadline:
                raise BenchError("the server does not count every subscription")
            await asyncio.sleep(0.1)

        head = orjson.dumps({"query": EMIT_QUERY})[:-1] + b',"variables":{"input":'

        def emit_body(n: int) -> bytes:
            payload = {
                "id": f"s-lat-{repetition}-{n}",
                "user": "ann",
                "template": "firefox",
                "sentAt": time.time(),
            }
            data = {"type": "session.created", "payload": payload, "wait": False}
            return head + orjson.dumps(data) + b"}}"

        emit_trips, failures = await steady(
            session, f"{main_url}/graphql", platform, args.rate, args.duration, emit_body
        )
        if failures:
            raise BenchError(f"{failures} emits failed")
        expected = len(emit_trips) * args.subscribers
        process.stdin.write(f"{expected}\n".encode())
        await process.stdin.drain()
        out, err = await asyncio.wait_for(process.communicate(), args.drain_timeout + 60)
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    if process.returncode != 0:
        raise BenchError(f"subscriber process failed: {err.decode()[-2000:]}")
    got = json.loads(out.decode().strip().splitlines()[-1])
    latencies = got["latencies_ms"]
    return {
        "emitted": len(emit_trips),
        "expected_messages": expected,
        "received_messages": got["received"],
        "e2e_p50_ms": quantile(latencies, 0.5),
        "e2e_p99_ms": quantile(latencies, 0.99),
        "emit_p50_ms": quantile([t * 1000 for t in emit_trips], 0.5),
        "emit_p99_ms": quantile([t * 1000 for t in emit_trips], 0.99),
    }


async def bench(args: argparse.Namespace, processes: Processes, work: Path) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as stack:
        database_urls: list[str | None] = [None, None]
        if args.postgres:
            database_urls = list(
                await stack.enter_async_context(postgres_databases(args.postgres, 2))
            )
        stack.callback(processes.stop_all)
        session = await stack.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        )
        receiver_port, main_port, base_port = free_port(), free_port(), free_port()
        count_url = f"http://{HOST}:{receiver_port}/count"
        main_url, base_url = f"http://{HOST}:{main_port}", f"http://{HOST}:{base_port}"
        main_dir, base_dir = work / "server", work / "baseline"

        def flags(data_dir: Path, port: int, database_url: str | None) -> list[str]:
            out = ["--port", str(port), "--data-dir", str(data_dir)]
            if database_url:
                out += ["--database-url", database_url]
            if args.broadcast_url:
                out += ["--broadcast-url", args.broadcast_url]
            return out

        receiver = processes.start(
            "receiver", [sys.executable, "-m", "bench.receiver", "--port", str(receiver_port)]
        )
        server = processes.start(
            "server",
            [
                *serve_command(),
                "serve",
                "--host",
                HOST,
                *flags(main_dir, main_port, database_urls[0]),
            ],
        )
        baseline = processes.start(
            "baseline",
            [
                sys.executable,
                "-m",
                "bench.baseline_server",
                *flags(base_dir, base_port, database_urls[1]),
            ],
        )
        await wait_ready(session, receiver, count_url, 30)
        await wait_ready(session, server, f"{main_url}/readyz", args.ready_timeout)
        await wait_ready(session, baseline, f"{base_url}/readyz", args.ready_timeout)
        admin = mint_token("admin", "bench-admin", main_dir)
        platform = mint_token("platform", "bench-platform", main_dir)
        base_platform = mint_token("platform", "bench-platform", base_dir)
        await install_webhook(
            session, f"{main_url}/graphql", admin, f"http://{HOST}:{receiver_port}/hook"
        )
        await check_delivery(session, f"{main_url}/graphql", platform, count_url)
        print(
            f"[latency] {args.rate:g} events/s for {args.duration:g}s, "
            f"{args.subscribers} pluginEvents subscribers",
            flush=True,
        )
        noop_body = orjson.dumps({"query": NOOP_QUERY})
        runs: dict[str, list[dict[str, Any]]] = {"e2e": [], "noop": []}
        for repetition in range(args.repetitions):
            run = await one_repetition(args, session, main_url, admin, platform, repetition)
            runs["e2e"].append(run)
            trips, failures = await steady(
                session,
                f"{base_url}/noop-graphql",
                base_platform,
                args.rate,
                args.duration,
                lambda n: noop_body,
            )
            if failures:
                raise BenchError(f"{failures} no-op mutations failed")
            noop = {
                "p50_ms": quantile([t * 1000 for t in trips], 0.5),
                "p99_ms": quantile([t * 1000 for t in trips], 0.99),
            }
            runs["noop"].append(noop)
            print(
                f"  rep {repetition + 1} e2e p50 {run['e2e_p50_ms']} ms p99 {run['e2e_p99_ms']} ms"
                f" ({run['received_messages']}/{run['expected_messages']} messages)"
                f"  no-op p50 {noop['p50_ms']:.3f} ms p99 {noop['p99_ms']:.3f} ms",
                flush=True,
            )
            if run["received_messages"] < run["expected_messages"]:
                print(
                    f"  warning: only {run['received_messages']} of {run['expected_messages']} "
                    f"outcome messages reached the subscribers within {args.drain_timeout:g}s",
                    file=sys.stderr,
                )

    def med(values: list[Any]) -> float:
        return float(statistics.median(values))

    p50 = med([r["e2e_p50_ms"] for r in runs["e2e"]])
    p99 = med([r["e2e_p99_ms"] for r in runs["e2e"]])
    noop50 = med([r["p50_ms"] for r in runs["noop"]])
    noop99 = med([r["p99_ms"] for r in runs["noop"]])
    label = f"({args.rate:g} ev/s, {args.subscribers} subs)"
    return {
        "rows": [
            {
                "scenario": f"end-to-end p99 emit -> pluginEvents subscriber {label} (ms)",
                "value": p99,
                "baseline": "no-op mutation round trip p99 (ms)",
                "baseline_value": noop99,
                "ratio": p99 / noop99,
                "target": "<= 5",
            },
            {
                "scenario": f"end-to-end p50 emit -> pluginEvents subscriber {label} (ms)",
                "value": p50,
                "baseline": "no-op mutation round trip p50 (ms)",
                "baseline_value": noop50,
                "ratio": p50 / noop50,
                "target": None,
            },
        ],
        "messages_lost": sum(r["expected_messages"] - r["received_messages"] for r in runs["e2e"]),
        "parameters": {
            "rate": args.rate,
            "subscribers": args.subscribers,
            "duration_seconds": args.duration,
            "repetitions": args.repetitions,
        },
        "runs": runs,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=float, default=200.0, help="events/s")
    parser.add_argument("--subscribers", type=int, default=100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers-process", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ws-url")
    parser.add_argument("--token")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=120.0)
    add_arguments(parser)
    parser.add_argument("--postgres", metavar="URL")
    parser.add_argument("--broadcast-url")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--ready-timeout", type=float, default=90.0)
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    if args.subscribers_process:
        args.expect = 1 << 62
        sys.stdout.write(json.dumps(asyncio.run(subscribers_process(args))) + "\n")
        return 0
    report, code = run_measured(
        "latency", args.keep_logs, lambda processes, work: bench(args, processes, work)
    )
    if report is None:
        return code
    print(json.dumps(report["rows"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

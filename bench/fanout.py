"""Fan-out: outcome messages/s to many WebSocket subscribers, against a bare `websockets` server.

    .venv/bin/python -m bench.fanout [--subscribers 1000] [--events 200] [--repetitions 3]

Issue 8, scenario 3. Processes (127.0.0.1 only, all ended at the end): the server (`serve`,
streamspace-webhook installed and enabled, pointing at `bench.receiver`), a subscriber process
(`--subscribers-process`, aiohttp) holding `--subscribers` graphql-transport-ws connections
subscribed to `pluginEvents(filter: {status: SUCCEEDED})`, and for the baseline a bare
`websockets` broadcaster (`--broadcaster`) that sends the same number of messages of the same
shape with `websockets.broadcast` to as many plain WebSocket clients.

A repetition: the subscriber process connects and subscribes; once the server's
`streamspace_subscribers` gauge counts them all, the server's RSS is read (before and after
connecting: memory per subscriber = RSS delta / count); `--events` events are emitted with
`emitEvents` (batches of 100); the subscriber process counts every outcome message and rates
them from the first to the last one received (messages/s across all subscribers), stopping when
all arrived or after `--quiet` s without one. The broadcaster run is timed the same way.
Figures are medians of the repetitions. Messages the server's hub dropped for slow
subscribers are reported.
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
    graphql,
    install_webhook,
    mint_token,
    postgres_databases,
    run_measured,
    serve_command,
    wait_ready,
)
from bench.load import BATCH_QUERY

SUBSCRIPTION = (
    "subscription { pluginEvents(filter: {status: SUCCEEDED}) "
    "{ plugin status at event { id type payload } delivery { id status attempts } } }"
)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# -- the subscriber process -----------------------------------------------------------------


async def subscribers_process(args: argparse.Namespace) -> dict[str, Any]:
    state = {"received": 0, "first": 0.0, "last": 0.0, "errors": 0}
    sample: list[str] = []

    def count(raw: str | bytes) -> None:
        data = orjson.loads(raw)
        if data.get("type") == "next":
            now = time.perf_counter()
            if not state["received"]:
                state["first"] = now
            state["last"] = now
            state["received"] += 1
            if not sample:
                sample.append(raw if isinstance(raw, str) else raw.decode())
        elif data.get("type") == "error":
            state["errors"] += 1

    async def one(session: aiohttp.ClientSession, ready: asyncio.Event) -> None:
        protocols = ("graphql-transport-ws",) if args.mode == "graphql" else ()
        async with session.ws_connect(args.ws_url, protocols=protocols, max_msg_size=0) as ws:
            if args.mode == "graphql":
                await ws.send_json(
                    {
                        "type": "connection_init",
                        "payload": {"Authorization": f"Bearer {args.token}"},
                    }
                )
                ack = await ws.receive_json(timeout=60)
                if ack.get("type") != "connection_ack":
                    raise RuntimeError(f"no connection_ack: {ack}")
                await ws.send_json(
                    {"id": "o", "type": "subscribe", "payload": {"query": SUBSCRIPTION}}
                )
            ready.set()
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                count(message.data)

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        readies = [asyncio.Event() for _ in range(args.count)]
        tasks = []
        for ready in readies:  # connect in waves, not 1,000 handshakes at once
            tasks.append(asyncio.create_task(one(session, ready)))
            if len(tasks) % 50 == 0:
                await asyncio.sleep(0.05)
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 120)
        print("subscribed", flush=True)
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        expect = int(line.strip() or "0")
        deadline = time.perf_counter() + args.timeout
        while state["received"] < expect and time.perf_counter() < deadline:
            last = state["last"] or time.perf_counter()
            if state["received"] and time.perf_counter() - last > args.quiet:
                break
            await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    seconds = state["last"] - state["first"]
    return {
        "received": state["received"],
        "expected": expect,
        "seconds": round(seconds, 4),
        "rate": state["received"] / seconds if seconds > 0 else 0.0,
        "errors": state["errors"],
        "sample": sample[0][:2000] if sample else None,
    }


# -- the bare websockets broadcaster --------------------------------------------------------


async def broadcaster(args: argparse.Namespace) -> None:
    import websockets

    clients: set[Any] = set()
    enough = asyncio.Event()

    async def handler(ws: Any) -> None:
        clients.add(ws)
        if len(clients) >= args.count:
            enough.set()
        try:
            await ws.wait_closed()
        finally:
            clients.discard(ws)

    message = args.message
    async with websockets.serve(handler, HOST, args.port, max_size=None):
        print("listening", flush=True)
        await enough.wait()
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        for _ in range(int(line.strip() or "0")):
            websockets.broadcast(clients, message)
            await asyncio.sleep(0)
        await asyncio.sleep(args.timeout)


# -- the orchestrator -----------------------------------------------------------------------


def per_message(cpu: float, result: dict[str, Any]) -> float:
    return cpu * 1e6 / result["received"] if result["received"] else 0.0


async def subscriber_gauge(session: aiohttp.ClientSession, base: str) -> int:
    async with session.get(f"{base}/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith("streamspace_subscribers "):
            return int(float(line.split()[1]))
    return 0


@contextlib.asynccontextmanager
async def child(command: list[str]) -> Any:
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
        yield process
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


async def expect_line(process: asyncio.subprocess.Process, word: bytes, within: float) -> None:
    assert process.stdout is not None and process.stderr is not None
    line = await asyncio.wait_for(process.stdout.readline(), within)
    if line.strip() != word:
        error = (await process.stderr.read()).decode()[-2000:]
        raise BenchError(f"child process failed ({line!r}): {error}")


async def finish(process: asyncio.subprocess.Process, expect: int, within: float) -> dict[str, Any]:
    assert process.stdin is not None
    process.stdin.write(f"{expect}\n".encode())
    await process.stdin.drain()
    out, err = await asyncio.wait_for(process.communicate(), within)
    if process.returncode != 0:
        raise BenchError(f"subscriber process failed: {err.decode()[-2000:]}")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


def subscriber_command(args: argparse.Namespace, ws_url: str, mode: str, token: str) -> list[str]:
    return [
        sys.executable, "-m", "bench.fanout", "--subscribers-process", "--mode", mode,
        "--ws-url", ws_url, "--token", token, "--count", str(args.subscribers),
        "--timeout", str(args.drain_timeout), "--quiet", str(args.quiet),
    ]  # fmt: skip


async def bench(args: argparse.Namespace, processes: Processes, work: Path) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as stack:
        database_url = None
        if args.postgres:
            database_url = (await stack.enter_async_context(postgres_databases(args.postgres, 1)))[
                0
            ]
        stack.callback(processes.stop_all)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        receiver_port, port = free_port(), free_port()
        count_url = f"http://{HOST}:{receiver_port}/count"
        base = f"http://{HOST}:{port}"
        data_dir = work / "server"
        flags = ["--host", HOST, "--port", str(port), "--data-dir", str(data_dir)]
        if database_url:
            flags += ["--database-url", database_url]
        if args.broadcast_url:
            flags += ["--broadcast-url", args.broadcast_url]
        receiver = processes.start(
            "receiver", [sys.executable, "-m", "bench.receiver", "--port", str(receiver_port)]
        )
        server = processes.start("server", [*serve_command(), "serve", *flags])
        await wait_ready(session, receiver, count_url, 30)
        await wait_ready(session, server, f"{base}/readyz", args.ready_timeout)
        admin = mint_token("admin", "bench-admin", data_dir)
        platform = mint_token("platform", "bench-platform", data_dir)
        await install_webhook(
            session, f"{base}/graphql", admin, f"http://{HOST}:{receiver_port}/hook"
        )
        await check_delivery(session, f"{base}/graphql", platform, count_url)
        print(
            f"[fanout] {args.subscribers} subscribers, {args.events} events per repetition",
            flush=True,
        )
        runs: dict[str, list[dict[str, Any]]] = {"server": [], "websockets": []}
        sample: str | None = None
        for repetition in range(args.repetitions):
            # The server.
            before_subs = await subscriber_gauge(session, base)
            rss_before = rss_kb(server.process.pid)
            command = subscriber_command(args, f"ws://{HOST}:{port}/graphql", "graphql", admin)
            async with child(command) as process:
                await expect_line(process, b"subscribed", 180)
                deadline = time.monotonic() + 60
                while await subscriber_gauge(session, base) < before_subs + args.subscribers:
                    if time.monotonic() > deadline:
                        raise BenchError("the server does not count every subscription")
                    await asyncio.sleep(0.1)
                await asyncio.sleep(0.5)
                rss_after = rss_kb(server.process.pid)
                cpu_before = cpu_seconds(server.process.pid)
                for start in range(0, args.events, 100):
                    inputs = [
                        {
                            "type": "session.created",
                            "payload": {"id": f"s-fan-{repetition}-{n}", "user": "ann"},
                            "wait": False,
                        }
                        for n in range(start, min(args.events, start + 100))
                    ]
                    await graphql(
                        session, f"{base}/graphql", platform, BATCH_QUERY, {"inputs": inputs}
                    )
                result = await finish(
                    process, args.events * args.subscribers, args.drain_timeout + 60
                )
                result["cpu_us_per_message"] = per_message(
                    cpu_seconds(server.process.pid) - cpu_before, result
                )
            result["rss_before_kb"], result["rss_after_kb"] = rss_before, rss_after
            result["kb_per_subscriber"] = (rss_after - rss_before) / args.subscribers
            sample = sample or result.get("sample")
            runs["server"].append(result)
            # Wait until the server has seen the subscriptions go.
            deadline = time.monotonic() + 30
            while await subscriber_gauge(session, base) > before_subs:
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)

            # The bare websockets broadcaster, the same number of messages of the same shape.
            message_file = work / "message.json"
            message_file.write_text(sample or json.dumps({"id": "o", "type": "next"}))
            bport = free_port()
            bcommand = [
                sys.executable, "-m", "bench.fanout", "--broadcaster", "--port", str(bport),
                "--count", str(args.subscribers), "--message-file", str(message_file),
                "--timeout", str(args.drain_timeout),
            ]  # fmt: skip
            async with child(bcommand) as bproc:
                await expect_line(bproc, b"listening", 60)
                command = subscriber_command(args, f"ws://{HOST}:{bport}", "raw", "")
                async with child(command) as process:
                    await expect_line(process, b"subscribed", 180)
                    assert bproc.stdin is not None
                    bcpu_before = cpu_seconds(bproc.pid)
                    bproc.stdin.write(f"{args.events}\n".encode())
                    await bproc.stdin.drain()
                    bare = await finish(
                        process, args.events * args.subscribers, args.drain_timeout + 60
                    )
                    bare["cpu_us_per_message"] = per_message(
                        cpu_seconds(bproc.pid) - bcpu_before, bare
                    )
            runs["websockets"].append(bare)
            print(
                f"  rep {repetition + 1} server {result['rate']:10.1f} msg/s "
                f"({result['received']}/{result['expected']})  "
                f"{result['kb_per_subscriber']:.1f} KB/subscriber  "
                f"websockets {bare['rate']:10.1f} msg/s ({bare['received']}/{bare['expected']})  "
                f"CPU/message {result['cpu_us_per_message']:.1f} us vs "
                f"{bare['cpu_us_per_message']:.1f} us",
                flush=True,
            )

    def med(values: Any) -> float:
        return float(statistics.median(values))

    rate = med(r["rate"] for r in runs["server"])
    bare_rate = med(r["rate"] for r in runs["websockets"])
    # The largest: later repetitions reuse memory the first one's subscribers left behind.
    kb = max(r["kb_per_subscriber"] for r in runs["server"])
    cpu = med(r["cpu_us_per_message"] for r in runs["server"])
    bare_cpu = med(r["cpu_us_per_message"] for r in runs["websockets"])
    lost = sum(r["expected"] - r["received"] for r in runs["server"])
    expected = sum(r["expected"] for r in runs["server"])
    return {
        "rows": [
            {
                "scenario": f"fan-out to {args.subscribers} WebSocket subscribers (messages/s)",
                "value": rate,
                "baseline": "bare websockets broadcaster (messages/s)",
                "baseline_value": bare_rate,
                "ratio": rate / bare_rate if bare_rate else 0.0,
                "target": ">= 0.5",
            },
            {
                "scenario": "memory per subscriber (KB, max RSS delta / count)",
                "value": kb,
                "baseline": "target (KB)",
                "baseline_value": 100.0,
                "ratio": kb / 100.0,
                "target": "<= 1",
            },
            {
                "scenario": "server CPU per message delivered (us, emits and dispatch included)",
                "value": cpu,
                "baseline": "bare websockets broadcaster CPU per message (us)",
                "baseline_value": bare_cpu,
                "ratio": cpu / bare_cpu if bare_cpu else 0.0,
                "target": "informative",
            },
            {
                "scenario": "fan-out messages not received (dropped or after the timeout)",
                "value": float(lost),
                "baseline": "messages expected",
                "baseline_value": float(expected),
                "ratio": lost / expected if expected else 0.0,
                "target": "informative",
            },
        ],
        "parameters": {
            "subscribers": args.subscribers,
            "events": args.events,
            "repetitions": args.repetitions,
        },
        "runs": runs,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fanout-subscribers", dest="subscribers", type=int, default=1000)
    parser.add_argument("--fanout-events", dest="events", type=int, default=200)
    parser.add_argument("--quiet", type=float, default=5.0, help="s without a message = done")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers-process", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--broadcaster", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["graphql", "raw"], default="graphql")
    parser.add_argument("--ws-url")
    parser.add_argument("--token")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--port", type=int)
    parser.add_argument("--message-file")
    add_arguments(parser)
    parser.add_argument("--subscribers", dest="subscribers", type=int)
    parser.add_argument("--events", dest="events", type=int)
    parser.add_argument("--postgres", metavar="URL")
    parser.add_argument("--broadcast-url")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--ready-timeout", type=float, default=90.0)
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    if args.subscribers_process:
        sys.stdout.write(json.dumps(asyncio.run(subscribers_process(args))) + "\n")
        return 0
    if args.broadcaster:
        args.message = Path(args.message_file).read_text()
        asyncio.run(broadcaster(args))
        return 0
    args.subscribers = args.subscribers or 1000
    args.events = args.events or 200
    report, code = run_measured(
        "fanout", args.keep_logs, lambda processes, work: bench(args, processes, work)
    )
    if report is None:
        return code
    print(json.dumps(report["rows"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

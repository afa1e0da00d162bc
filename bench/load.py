"""The load generator: fixed concurrency, a warm-up, then a timed window.

Runs in its own process; prints one JSON object on stdout:
    {"requests": N, "seconds": S, "rate": N/S, "errors": E, "total_ok": T, "hits": H, ...}
`requests` and `errors` count responses completed inside the window; `total_ok` counts every
successful request of the run, warm-up included; `hits` is the receiver's count grown during
the window (when --hits-url is given).

    python -m bench.load --kind emit --url http://127.0.0.1:9000/graphql --token T
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

EMIT_QUERY = (
    "mutation Emit($input: EmitEventInput!) { emitEvent(input: $input) { event { id } duplicate } }"
)
NOOP_QUERY = "mutation { noop }"
BATCH_QUERY = (
    "mutation EmitMany($inputs: [EmitEventInput!]!) { emitEvents(inputs: $inputs) "
    "{ event { id } duplicate } }"
)
CATALOG_QUERY = (
    'query { catalog(filter: {search: "bench"}, sort: RATING, first: 20) '
    "{ edges { node { id name version avgRating ratingCount } } } }"
)
VIEWER_QUERY = "query { viewer { subject } }"
KINDS = ("emit", "emit-batch", "noop-graphql", "starlette", "catalog", "viewer")


def body_factory(kind: str, prefix: str, batch: int = 100) -> Callable[[int], bytes]:
    """A function n -> the request body of the n-th request."""
    if kind == "emit-batch":
        head = orjson.dumps({"query": BATCH_QUERY})[:-1] + b',"variables":{"inputs":'

        def emit_batch(n: int) -> bytes:
            inputs = [
                {
                    "type": "session.created",
                    "payload": {"id": f"s-{prefix}{n}-{i}", "user": "ann", "template": "firefox"},
                    "wait": False,
                }
                for i in range(batch)
            ]
            return head + orjson.dumps(inputs) + b"}}"

        return emit_batch
    if kind in ("catalog", "viewer"):
        constant = orjson.dumps({"query": CATALOG_QUERY if kind == "catalog" else VIEWER_QUERY})
        return lambda n: constant
    if kind == "emit":
        head = orjson.dumps({"query": EMIT_QUERY})[:-1] + b',"variables":{"input":'

        def emit(n: int) -> bytes:
            payload = {"id": f"s-{prefix}{n}", "user": "ann", "template": "firefox"}
            data = {"type": "session.created", "payload": payload, "wait": False}
            return head + orjson.dumps(data) + b"}}"

        return emit
    if kind == "noop-graphql":
        constant = orjson.dumps({"query": NOOP_QUERY})
        return lambda n: constant
    if kind == "starlette":
        return lambda n: orjson.dumps({"noop": True, "n": n})
    raise ValueError(f"unknown kind {kind!r}")


def ok_response(kind: str, status: int, data: bytes) -> bool:
    if status != 200:
        return False
    if kind == "starlette":
        return data.startswith(b'{"data"')
    return b'"errors"' not in data and data.startswith(b'{"data"')


async def hits_of(session: aiohttp.ClientSession, url: str | None) -> int | None:
    if not url:
        return None
    async with session.get(url) as response:
        return int((await response.json())["hits"])


async def run(args: argparse.Namespace) -> dict[str, Any]:
    make_body = body_factory(args.kind, args.prefix, args.batch)
    headers = {"content-type": "application/json"}
    if args.token:
        headers["authorization"] = f"Bearer {args.token}"
    state = {"window": False, "stop": False, "counter": 0}
    counts = {"ok": 0, "errors": 0, "window_ok": 0, "window_errors": 0}
    latencies: list[float] = []
    sample_error: list[str] = []

    connector = aiohttp.TCPConnector(limit=args.concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=args.request_timeout)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
        aiohttp.ClientSession() as side,
    ):

        async def worker() -> None:
            while not state["stop"]:
                n = state["counter"]
                state["counter"] = n + 1
                body = make_body(n)
                started = time.perf_counter()
                try:
                    async with session.post(args.url, data=body, headers=headers) as response:
                        data = await response.read()
                        good = ok_response(args.kind, response.status, data)
                        if not good and not sample_error:
                            sample_error.append(f"HTTP {response.status}: {data[:500]!r}")
                except (aiohttp.ClientError, TimeoutError) as error:
                    good = False
                    if not sample_error:
                        sample_error.append(f"{type(error).__name__}: {error}")
                elapsed = time.perf_counter() - started
                counts["ok" if good else "errors"] += 1
                if state["window"]:
                    counts["window_ok" if good else "window_errors"] += 1
                    latencies.append(elapsed)

        workers = [asyncio.create_task(worker()) for _ in range(args.concurrency)]
        try:
            await asyncio.sleep(args.warmup)
            hits_before = await hits_of(side, args.hits_url)
            state["window"] = True
            window_started = time.perf_counter()
            await asyncio.sleep(args.duration)
            state["window"] = False
            seconds = time.perf_counter() - window_started
            hits_after = await hits_of(side, args.hits_url)
        finally:
            state["stop"] = True
            await asyncio.gather(*workers, return_exceptions=True)

    latencies.sort()

    def quantile(q: float) -> float | None:
        if not latencies:
            return None
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 3)

    result: dict[str, Any] = {
        "kind": args.kind,
        "concurrency": args.concurrency,
        "requests": counts["window_ok"],
        "errors": counts["window_errors"],
        "seconds": round(seconds, 4),
        "rate": counts["window_ok"] / seconds if seconds > 0 else 0.0,
        "total_ok": counts["ok"],
        "total_errors": counts["errors"],
        "latency_p50_ms": quantile(0.5),
        "latency_p99_ms": quantile(0.99),
        "sample_error": sample_error[0] if sample_error else None,
    }
    if args.kind == "emit-batch":
        result["batch"] = args.batch
        result["events"] = counts["window_ok"] * args.batch
        result["event_rate"] = result["rate"] * args.batch
        result["total_events"] = counts["ok"] * args.batch
    if hits_before is not None and hits_after is not None:
        result["hits"] = hits_after - hits_before
        result["hits_rate"] = (hits_after - hits_before) / seconds if seconds > 0 else 0.0
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kind", choices=KINDS, required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--token")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--request-timeout", type=float, default=30.0)
    parser.add_argument("--hits-url", help="the receiver's /count, sampled around the window")
    parser.add_argument("--prefix", default="", help="prefix of emitted session ids")
    parser.add_argument("--batch", type=int, default=100, help="events per emitEvents call")
    args = parser.parse_args()
    try:
        from uvloop import run as run_loop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        run_loop = asyncio.run
    json.dump(run_loop(run(args)), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

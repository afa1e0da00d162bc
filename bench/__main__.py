"""The benchmark suite of issue 8, in one command.

    .venv/bin/python -m bench                                   # SQLite + memory://
    .venv/bin/python -m bench --postgres postgres://postgres@127.0.0.1:5432/postgres \\
        --broadcast-url redis://127.0.0.1:6379                  # PostgreSQL + Redis
    .venv/bin/python -m bench --quick                           # one repetition (CI), no targets

Scenarios (see bench/README.md): 1 emit throughput (bench.emit, plus emitEvents in batches of
100), 5 dispatch (bench.dispatch, in-process), 4 catalog (bench.catalog), 2 end-to-end latency
(bench.latency), 3 fan-out (bench.fanout). A scenario that fails or is left out (--only) is
listed as "not measured yet". Every figure is the
median of --repetitions (>= 3) and every ratio is against a baseline measured in the same run.
Prints one table and writes bench/results/suite.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench import catalog, dispatch, emit, fanout, latency

RESULTS = Path(__file__).resolve().parent / "results"
NOT_MEASURED = {
    "latency": [
        {
            "scenario": "2 end-to-end p99 emit -> pluginEvents subscriber (ms)",
            "baseline": "no-op mutation round trip p99 (ms)",
            "target": "<= 5",
        }
    ],
    "fanout": [
        {
            "scenario": "3 fan-out to 1,000 WebSocket subscribers (messages/s)",
            "baseline": "bare websockets broadcaster (messages/s)",
            "target": ">= 0.5",
        },
        {"scenario": "3 memory per subscriber (KB)", "baseline": "-", "target": "<= 100 KB"},
    ],
    "catalog": [
        {
            "scenario": "4 catalog search p50 (ms)",
            "baseline": "{ viewer { subject } } p50 (ms)",
            "target": "<= 2",
        }
    ],
    "dispatch": [
        {
            "scenario": "5 dispatch (deliveries/s)",
            "baseline": "direct hook calls (calls/s)",
            "target": ">= 0.3",
        }
    ],
    "emit": [
        {
            "scenario": "1 emitEvent (events/s)",
            "baseline": "no-op Strawberry mutation (req/s)",
            "target": ">= 0.6",
        }
    ],
}
SCENARIOS = ("emit", "dispatch", "catalog", "latency", "fanout")


def target_met(row: dict[str, Any]) -> bool | None:
    if row.get("met") is not None:
        return bool(row["met"])
    match = re.fullmatch(r"\s*(>=|<=)\s*([0-9.]+)\s*", row.get("target") or "")
    if not match or row.get("ratio") is None:
        return None
    bound = float(match.group(2))
    return row["ratio"] >= bound if match.group(1) == ">=" else row["ratio"] <= bound


def format_table(rows: list[dict[str, Any]], title: str, quick: bool) -> str:
    header = ("figure", "value", "baseline", "baseline value", "ratio", "target", "met")
    lines = []
    for row in rows:
        if row.get("value") is None:
            lines.append(
                (row["scenario"], "not measured yet", row["baseline"], "-", "-", row["target"], "-")
            )
            continue
        met = target_met(row)
        lines.append(
            (
                row["scenario"],
                f"{row['value']:.1f}" if row["value"] >= 10 else f"{row['value']:.3f}",
                row["baseline"],
                f"{row['baseline_value']:.1f}"
                if row["baseline_value"] >= 10
                else f"{row['baseline_value']:.3f}",
                f"{row['ratio']:.3f}" if row["ratio"] >= 0.01 else f"{row['ratio']:.2e}",
                row.get("target") or "-",
                "-" if quick or met is None else ("yes" if met else "NO"),
            )
        )
    widths = [max(len(str(r[i])) for r in [header, *lines]) for i in range(len(header))]
    numeric = {1, 3, 4}

    def fmt(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(widths[i]) if i in numeric else c.ljust(widths[i]) for i, c in enumerate(cells)
        ).rstrip()

    rule = "-" * len(fmt(header))
    return "\n".join([title, rule, fmt(header), rule, *[fmt(line) for line in lines], rule])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", metavar="URL", help="PostgreSQL server (default SQLite)")
    parser.add_argument("--broadcast-url", help="e.g. redis://127.0.0.1:6379 (default memory://)")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument(
        "--quick", action="store_true", help="one repetition, small counts, short windows"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=SCENARIOS,
        help="repeatable",
    )
    parser.add_argument("--concurrency", type=int, default=32, help="scenario 1")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--drain-timeout", type=float, default=300.0)
    parser.add_argument("--ready-timeout", type=float, default=90.0)
    parser.add_argument("--batch", type=int, default=100, help="emitEvents batch size")
    parser.add_argument(
        "--noop-plugins", type=int, default=5, help="scenario 1: plugins whose hooks return at once"
    )
    parser.add_argument("--dispatch-events", type=int, default=1000)
    parser.add_argument("--catalog-plugins", type=int, default=10000)
    parser.add_argument("--rate", type=float, default=200.0, help="scenario 2 events/s")
    parser.add_argument("--subscribers", type=int, default=100, help="scenario 2")
    parser.add_argument("--fanout-subscribers", type=int, default=1000, help="scenario 3")
    parser.add_argument("--fanout-events", type=int, default=50, help="scenario 3")
    parser.add_argument("--out", type=Path, default=RESULTS / "suite.json")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args(argv)
    if args.repetitions < 3:
        parser.error("--repetitions: a figure is the median of at least 3")
    for name in ("postgres", "broadcast_url"):
        value = getattr(args, name)
        if value and urlsplit(value).hostname not in {"127.0.0.1", "localhost", "::1"}:
            parser.error(f"--{name.replace('_', '-')} must point at this machine")
    if args.quick:
        # It proves every scenario still runs; with no targets, one repetition tells that.
        args.repetitions = 1
        args.warmup, args.duration = 0.5, 1.0
        args.dispatch_events = min(args.dispatch_events, 100)
        args.catalog_plugins = min(args.catalog_plugins, 500)
        args.batch = min(args.batch, 20)
        args.rate, args.subscribers = min(args.rate, 50.0), min(args.subscribers, 10)
        args.fanout_subscribers = min(args.fanout_subscribers, 20)
        args.fanout_events = min(args.fanout_events, 20)
    return args


def run_scenario(
    name: str, args: argparse.Namespace, scenario_args: argparse.Namespace
) -> dict[str, Any] | None:
    """One scenario's report, or None when it failed (its rows become "not measured yet")."""
    if name == "dispatch":
        try:
            return asyncio.run(
                dispatch.measure(args.dispatch_events, 5, args.repetitions, args.postgres)
            )
        except Exception as error:  # report it, go on with the other scenarios
            print(f"bench.dispatch: {type(error).__name__}: {error}", file=sys.stderr)
            return None
    module = {"emit": emit, "catalog": catalog, "latency": latency, "fanout": fanout}[name]
    report, code = emit.run_measured(
        name, args.keep_logs, lambda processes, work: module.bench(scenario_args, processes, work)
    )
    if code == 130:
        raise KeyboardInterrupt
    return report


def scenario_arguments(name: str, args: argparse.Namespace) -> argparse.Namespace:
    scenario_args = argparse.Namespace(**vars(args))
    if name == "catalog":
        scenario_args.plugins = args.catalog_plugins
        scenario_args.ratings_per_plugin = 3
        scenario_args.concurrency = 1
        scenario_args.warmup = min(args.warmup, 1.0)
        scenario_args.duration = min(args.duration, 3.0)
    elif name == "fanout":
        scenario_args.subscribers = args.fanout_subscribers
        scenario_args.events = args.fanout_events
        scenario_args.quiet = 5.0
        scenario_args.drain_timeout = min(args.drain_timeout, 60.0)
    elif name == "latency":
        scenario_args.drain_timeout = min(args.drain_timeout, 60.0)
    return scenario_args


def lost_row(report: dict[str, Any]) -> dict[str, Any]:
    expected = sum(r["expected_messages"] for r in report["runs"]["e2e"])
    return {
        "scenario": "outcome messages not received (dropped or after the timeout)",
        "value": float(report["messages_lost"]),
        "baseline": "messages expected",
        "baseline_value": float(expected),
        "ratio": report["messages_lost"] / expected,
        "target": "informative",
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    selected = args.only or list(SCENARIOS)
    config = "postgres" if args.postgres else "sqlite"
    config += "+" + (urlsplit(args.broadcast_url).scheme if args.broadcast_url else "memory")
    rows: list[dict[str, Any]] = []
    details: dict[str, Any] = {}
    missing: list[str] = []
    started = time.monotonic()
    numbers = {"emit": "1", "latency": "2", "fanout": "3", "catalog": "4", "dispatch": "5"}

    for name in SCENARIOS:
        if name not in selected:
            rows += [{**row, "value": None} for row in NOT_MEASURED[name]]
            missing.append(name)
            continue
        print(f"== scenario {numbers[name]}: {name}", flush=True)
        try:
            report = run_scenario(name, args, scenario_arguments(name, args))
        except KeyboardInterrupt:
            print("bench: interrupted", file=sys.stderr)
            return 130
        if report is None:
            rows += [{**row, "value": None} for row in NOT_MEASURED[name]]
            missing.append(name)
            continue
        details[name] = report
        scenario_rows = list(report["rows"])
        if name == "latency" and report.get("messages_lost"):
            scenario_rows.append(lost_row(report))
        rows += [{**row, "scenario": f"{numbers[name]} {row['scenario']}"} for row in scenario_rows]

    rows.sort(key=lambda row: row["scenario"][:1])
    for row in rows:
        if row.get("value") is not None:
            row["met"] = None if args.quick else target_met(row)

    title = (
        f"StreamSpace benchmark suite: {config} (median of {args.repetitions}"
        f"{', QUICK: no targets' if args.quick else ''}, {os.cpu_count()} CPUs, "
        f"{time.monotonic() - started:.0f}s)"
    )
    print()
    print(format_table(rows, title, args.quick))
    document = {
        "benchmark": "suite",
        "configuration": config,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "host": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "rows": rows,
        "not_measured_yet": missing,
        "details": details,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(f"written to {args.out}")
    return 1 if missing and not args.only else 0


if __name__ == "__main__":
    sys.exit(main())

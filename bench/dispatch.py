"""Dispatch: deliveries/s through the durable dispatcher against the same hook calls made directly.

    .venv/bin/python -m bench.dispatch [--events 1000] [--plugins 5] [--repetitions 3]
        [--postgres URL]

In-process (issue 8, scenario 5): a `runtime.hosting.host.PluginHost` on a fresh, migrated database
(a temporary SQLite file by default) with `--plugins` installed, enabled plugins whose
`on_session_created` returns at once. A measurement emits `--events` `session.created` events
(`emitter.emit_many`, batches of 500, wait: false) and times from the first emit until the
host has published every delivery's SUCCEEDED outcome (deliveries = events x plugins; counted
from the hub, then checked in the database). The baseline makes the same number of
hook calls directly through each loaded worker's hook caller (permission filtering, the same
timeout wrapper) without the database. Figures are medians of the repetitions, each on a fresh
database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HOOK = "on_session_created"


def _plugin_class() -> type:
    from runtime.sdk import Plugin, PluginContext

    class Noop(Plugin):
        async def on_session_created(self, ctx: PluginContext, session: Mapping[str, Any]) -> None:
            return None

    return Noop


async def _measure_once(url: str, events: int, plugins: int, tag: str) -> dict[str, Any]:
    from models import Delivery, InstalledPlugin, close_database, init_database
    from runtime.broadcast.hub import Hub
    from runtime.catalog.installs import Installer
    from runtime.catalog.manifest import parse_manifest
    from runtime.catalog.repositories import ensure_builtin_repository
    from runtime.core.secrets import SecretBox
    from runtime.delivery.emitter import DELIVERY_CHANNEL, MAX_BATCH, EmitRequest
    from runtime.hosting.host import HostSettings, PluginHost
    from runtime.hosting.registry import PluginRegistry
    from runtime.sdk import Event as SdkEvent

    await init_database(url)
    try:
        await ensure_builtin_repository()
        registry = PluginRegistry()
        names = [f"bench-noop-{index}" for index in range(plugins)]
        cls = _plugin_class()
        for name in names:
            manifest = {
                "name": name,
                "version": "1.0.0",
                "type": "extension",
                "category": "testing",
                "permissions": ["sessions:read", "users:read"],
            }
            registry.register(cls, parse_manifest(manifest), "bench")
            await InstalledPlugin.create(name=name, version="1.0.0", enabled=True, config={})
        hub = Hub("memory://")
        await hub.connect()
        host = PluginHost(
            registry,
            hub,
            Installer(SecretBox("bench-secret-key")),
            HostSettings(poll_interval=0.05),
        )
        await host.start()
        try:
            expected = events * plugins
            # Outcomes are counted as the host publishes them: polling the table would take
            # the database from the dispatcher being measured.
            async with hub.subscribe(DELIVERY_CHANNEL, buffer=expected + 16) as inbox:
                started = time.perf_counter()
                for start in range(0, events, MAX_BATCH):
                    batch = [
                        EmitRequest(
                            "session.created",
                            {"id": f"s-{tag}-{n}", "user": "ann", "template": "firefox"},
                        )
                        for n in range(start, min(events, start + MAX_BATCH))
                    ]
                    await host.emitter.emit_many(batch)
                emitted = time.perf_counter() - started
                done = 0
                async with asyncio.timeout(600):
                    while done < expected:
                        message = await inbox.get()
                        if message.data is None:
                            raise RuntimeError("the outcome subscription missed messages")
                        done += message.data["delivery"]["status"] == "SUCCEEDED"
            seconds = time.perf_counter() - started
            stored = await Delivery.filter(status="SUCCEEDED").count()
            if stored != expected:
                raise RuntimeError(f"{stored}/{expected} deliveries SUCCEEDED in the database")

            # The baseline: the same number of hook calls, directly.
            callers = [host.loaded[name].worker._call_hook for name in names]
            timeout = 30.0
            direct_started = time.perf_counter()
            for n in range(events):
                payload = {"id": f"s-{tag}-{n}", "user": "ann", "template": "firefox"}
                event = SdkEvent(id=str(n), type="session.created", payload=payload)
                for call in callers:
                    async with asyncio.timeout(timeout):
                        await call(HOOK, payload, event)
            direct_seconds = time.perf_counter() - direct_started
        finally:
            await host.stop()
            await hub.disconnect()
    finally:
        await close_database()
    return {
        "deliveries": expected,
        "seconds": round(seconds, 4),
        "emit_seconds": round(emitted, 4),
        "rate": expected / seconds,
        "direct_seconds": round(direct_seconds, 6),
        "direct_rate": expected / direct_seconds,
    }


async def measure(
    events: int, plugins: int, repetitions: int, postgres: str | None = None
) -> dict[str, Any]:
    from models import migrate_database

    runs: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="ssbench-dispatch-"))
    try:
        template = work / "template.db"
        if not postgres:
            await migrate_database(f"sqlite://{template}")
        for repetition in range(repetitions):
            if postgres:
                from bench.emit import postgres_databases

                async with postgres_databases(postgres, 1) as urls:
                    await migrate_database(urls[0])
                    run = await _measure_once(urls[0], events, plugins, str(repetition))
            else:
                path = work / f"rep{repetition}.db"
                shutil.copy(template, path)
                run = await _measure_once(f"sqlite://{path}", events, plugins, str(repetition))
            runs.append(run)
            print(
                f"  rep {repetition + 1} dispatch {run['rate']:9.1f} deliveries/s  "
                f"direct {run['direct_rate']:11.1f} calls/s",
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rate = float(statistics.median(r["rate"] for r in runs))
    direct = float(statistics.median(r["direct_rate"] for r in runs))
    return {
        "rows": [
            {
                "scenario": f"dispatch, {plugins} no-op plugins (deliveries/s)",
                "value": rate,
                "baseline": "direct hook calls (calls/s)",
                "baseline_value": direct,
                "ratio": rate / direct,
                "target": ">= 0.3",
            }
        ],
        "parameters": {"events": events, "plugins": plugins, "repetitions": repetitions},
        "runs": runs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--plugins", type=int, default=5)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--postgres", metavar="URL")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        report = asyncio.run(measure(args.events, args.plugins, args.repetitions, args.postgres))
        print(json.dumps(report["rows"], indent=2))
        return 0
    return 130


if __name__ == "__main__":
    sys.exit(main())

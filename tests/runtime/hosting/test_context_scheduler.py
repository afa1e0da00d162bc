"""ctx.scheduler: interval and cron jobs, all cancelled when the plugin is disabled."""

from __future__ import annotations

from typing import Any

import pytest

from models import InstalledPlugin, PluginStorage
from runtime.hosting.context import LogSink, PluginLogger, PluginScheduler
from runtime.sdk import Plugin, PluginContext
from tests.conftest import Database
from tests.runtime.hosts import running_host, until


class Ticker(Plugin):
    ticks = 0

    async def on_load(self, ctx: PluginContext) -> None:
        ctx.scheduler.every(0.01, self.tick, name="tick")
        ctx.scheduler.cron("0 3 * * *", self.tick, name="nightly")

    async def tick(self) -> None:
        Ticker.ticks += 1


async def test_an_interval_job_runs_repeatedly(db: Database) -> None:
    Ticker.ticks = 0
    async with running_host({"ticker": Ticker}) as host:
        assert host.loaded["ticker"].context.scheduler.jobs == ["nightly", "tick"]
        await until(lambda: Ticker.ticks >= 3)


async def test_jobs_are_cancelled_when_the_plugin_is_disabled(db: Database) -> None:
    Ticker.ticks = 0
    async with running_host({"ticker": Ticker}) as host:
        scheduler = host.loaded["ticker"].context.scheduler
        tasks = list(scheduler._tasks.values())
        await until(lambda: Ticker.ticks >= 1)
        await InstalledPlugin.filter(name="ticker").update(enabled=False)
        await host.sync_plugin("ticker")
        assert scheduler.jobs == []
        assert all(task.cancelled() for task in tasks)


async def test_cron_expressions_are_validated(db: Database) -> None:
    async with running_host({"ticker": Ticker}) as host:
        scheduler = host.loaded["ticker"].context.scheduler
        with pytest.raises(ValueError, match="not a cron expression"):
            scheduler.cron("every day at noon", Ticker().tick, name="bad")
        with pytest.raises(ValueError, match="scheduled already"):
            scheduler.every(1, Ticker().tick, name="tick")
        with pytest.raises(ValueError, match="positive"):
            scheduler.every(0, Ticker().tick, name="zero")
        assert "bad" not in scheduler.jobs


async def test_a_failing_job_is_logged_and_keeps_its_schedule(db: Database) -> None:
    runs = 0
    logged: list[str] = []

    class Sink:
        def put(self, entry: object) -> None:
            logged.append(str(getattr(entry, "message", "")))

    async def failing() -> None:
        nonlocal runs
        runs += 1
        raise RuntimeError("nope")

    scheduler = PluginScheduler("p", PluginLogger("p", Sink()))  # type: ignore[arg-type]
    scheduler.every(0.01, failing, name="failing")
    try:
        await until(lambda: runs >= 2)
    finally:
        await scheduler.cancel_all()
    assert any("scheduled job failing failed: nope" in line for line in logged)


async def test_a_job_runs_once_per_tick_however_many_replicas_schedule_it(db: Database) -> None:
    async def publish(entry: dict[str, Any]) -> None:
        return None

    sink = LogSink(publish)
    runs: list[str] = []

    async def job() -> None:
        runs.append("run")

    replicas = [PluginScheduler("ticker", PluginLogger("ticker", sink)) for _ in range(3)]
    for scheduler in replicas:
        scheduler.every(0.2, job, name="tick")
    await until(lambda: len(runs) >= 4)
    for scheduler in replicas:
        await scheduler.cancel_all()
    claims = await PluginStorage.filter(plugin="ticker#ticks").count()
    assert len(runs) == claims

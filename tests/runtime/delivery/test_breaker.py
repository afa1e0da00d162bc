"""The circuit breaker: consecutive failures → DEGRADED; a successful probe → ACTIVE."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from models import InstalledPlugin
from runtime.delivery.breaker import CircuitBreaker
from runtime.delivery.emitter import EmitRequest
from runtime.hosting.host import STATUS_CHANNEL
from runtime.sdk import Plugin, PluginContext, Skip
from tests.conftest import Database
from tests.runtime.hosts import all_final, running_host, until


class Unstable(Plugin):
    failing = True

    async def on_session_created(
        self, ctx: PluginContext, session: Mapping[str, Any]
    ) -> dict[str, bool]:
        if Unstable.failing:
            raise RuntimeError("vendor down")
        return {"ok": True}


class Picky(Plugin):
    async def on_session_created(self, ctx: PluginContext, session: Mapping[str, Any]) -> None:
        raise Skip("not for me")


async def stored_status_is(name: str, status: str) -> bool:
    return (await InstalledPlugin.get(name=name)).status == status


async def test_failures_degrade_the_plugin_and_a_probe_restores_it(db: Database) -> None:
    Unstable.failing = True
    async with (
        running_host(
            {"unstable": Unstable}, breaker_threshold=2, breaker_cooldown=0.2, max_attempts=50
        ) as host,
        host.hub.subscribe(STATUS_CHANNEL) as inbox,
    ):
        results = [
            await host.emitter.emit(EmitRequest("session.created", {"id": f"s{i}"}))
            for i in range(3)
        ]
        await until(lambda: host.loaded["unstable"].status == "DEGRADED")
        # The host marks the plugin in memory, then writes the row: wait for the row.
        await until(partial(stored_status_is, "unstable", "DEGRADED"))
        assert (await InstalledPlugin.get(name="unstable")).status == "DEGRADED"
        Unstable.failing = False
        await until(lambda: host.loaded["unstable"].status == "ACTIVE")
        for result in results:
            await until(partial(all_final, result.event.id))
        statuses: list[tuple[str, str]] = []
        while len(statuses) < 2:
            message = await inbox.get()
            assert message.data is not None
            statuses.append((message.data["status"], message.data["previousStatus"]))
    assert statuses == [("DEGRADED", "ACTIVE"), ("ACTIVE", "DEGRADED")]
    assert (await InstalledPlugin.get(name="unstable")).status == "ACTIVE"


async def test_skipped_events_do_not_count_as_failures(db: Database) -> None:
    async with running_host({"picky": Picky}, breaker_threshold=2) as host:
        for i in range(4):
            result = await host.emitter.emit(
                EmitRequest("session.created", {"id": f"s{i}"}, wait=True)
            )
            assert [d.status for d in result.deliveries] == ["SKIPPED"]
        assert host.loaded["picky"].status == "ACTIVE"
        assert not host.loaded["picky"].worker.breaker.open


def test_an_open_breaker_allows_one_probe_per_cooldown() -> None:
    breaker = CircuitBreaker(threshold=2, cooldown=0.0)
    assert breaker.record(False) is None
    assert breaker.record(False) == "opened"
    assert breaker.allowance(0) == 0  # no free slot: the probe waits, not lost
    assert breaker.allowance(4) == 1
    assert breaker.record(True) == "closed"
    assert breaker.allowance(4) == 4


def test_a_closed_breaker_allows_nothing_during_cooldown() -> None:
    breaker = CircuitBreaker(threshold=1, cooldown=3600)
    assert breaker.record(False) == "opened"
    assert breaker.allowance(4) == 0


def test_skips_count_as_answers_and_retry_afters_are_not_counted() -> None:
    breaker = CircuitBreaker(threshold=2, cooldown=3600)
    assert breaker.judge("RETRYING", retry_after=None) is None
    assert breaker.judge("SKIPPED", retry_after=None) is None  # resets the count
    assert breaker.judge("RETRYING", retry_after=None) is None
    for _ in range(5):
        assert breaker.judge("RETRYING", retry_after=30) is None  # the vendor said "slow down"
    assert not breaker.open
    assert breaker.judge("DEAD", retry_after=None) == "opened"
    assert breaker.judge("SUCCEEDED", retry_after=None) == "closed"

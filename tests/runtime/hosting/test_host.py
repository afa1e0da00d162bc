"""The plugin host: loading, delivering events in isolation, retries, dead letters."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from models import Delivery, InstalledPlugin, PluginLog
from runtime.delivery.emitter import EmitRequest
from runtime.sdk import Event, Plugin, PluginContext, RetryLater
from tests.conftest import Database
from tests.runtime.hosts import all_final, manifest, running_host, until

SESSION = {
    "id": "admin-firefox-abc123",
    "user_id": "john.doe",
    "template": "firefox-browser",
    "state": "running",
    "resources": {"memory": "512Mi", "cpu": "250m"},
}


class Recorder(Plugin):
    calls: list[tuple[str, Any]] = []

    async def on_session_created(
        self, ctx: PluginContext, session: Mapping[str, Any]
    ) -> dict[str, Any]:
        Recorder.calls.append(("on_session_created", dict(session)))
        ctx.log.info("session seen", session=session["id"])
        return {"seen": session["id"]}

    async def on_user_login(self, ctx: PluginContext, user: Mapping[str, Any]) -> None:
        Recorder.calls.append(("on_user_login", dict(user)))

    async def on_event(self, ctx: PluginContext, event: Event) -> dict[str, Any]:
        Recorder.calls.append(("on_event", event.type))
        return {"type": event.type}


class Hanging(Plugin):
    MANIFEST = {**manifest("hanging"), "timeoutSeconds": 0.2}

    async def on_session_created(self, ctx: PluginContext, session: Mapping[str, Any]) -> None:
        await asyncio.sleep(3600)


class Raising(Plugin):
    async def on_session_created(self, ctx: PluginContext, session: Mapping[str, Any]) -> None:
        raise RuntimeError("boom")


class Flaky(Plugin):
    failures_left = 2

    async def on_session_created(
        self, ctx: PluginContext, session: Mapping[str, Any]
    ) -> dict[str, int]:
        if Flaky.failures_left:
            Flaky.failures_left -= 1
            raise RetryLater("not yet", after=0)
        return {"ok": 1}


class Blind(Plugin):
    """Implements a session hook but lacks the permission to see sessions."""

    MANIFEST = manifest("blind", permissions=[])

    async def on_session_created(self, ctx: PluginContext, session: Mapping[str, Any]) -> None:
        raise AssertionError("must never be called")


async def test_each_hook_receives_the_normalised_payload(db: Database) -> None:
    Recorder.calls = []
    async with running_host({"recorder": Recorder}) as host:
        result = await host.emitter.emit(EmitRequest("session.created", SESSION, wait=True))
        await host.emitter.emit(
            EmitRequest("user.login", {"id": "u1", "username": "ann"}, wait=True)
        )
        await host.emitter.emit(EmitRequest("custom.backup_done", {"ok": True}, wait=True))
    assert [d.status for d in result.deliveries] == ["SUCCEEDED"]
    assert result.deliveries[0].result == {"seen": SESSION["id"]}
    hook, session = Recorder.calls[0]
    assert hook == "on_session_created"
    assert session["userId"] == session["user"] == "john.doe"
    assert [call[0] for call in Recorder.calls] == [
        "on_session_created",
        "on_user_login",
        "on_event",
    ]
    await until(lambda: PluginLog.filter(plugin="recorder", message="session seen").exists())


async def test_loading_marks_plugins_active(db: Database) -> None:
    async with running_host({"recorder": Recorder}) as host:
        assert host.loaded["recorder"].status == "ACTIVE"
        assert (await InstalledPlugin.get(name="recorder")).status == "ACTIVE"


async def test_a_hanging_and_a_raising_plugin_do_not_delay_a_healthy_one(db: Database) -> None:
    async with running_host({"hanging": Hanging, "raising": Raising, "recorder": Recorder}) as host:
        result = await host.emitter.emit(EmitRequest("session.created", SESSION))
        healthy = next(d for d in result.deliveries if d.plugin == "recorder")
        await until(lambda: Delivery.filter(id=healthy.id, status="SUCCEEDED").exists(), deadline=5)
        await until(lambda: Delivery.filter(plugin="hanging", status="RETRYING").exists())
        await until(lambda: Delivery.filter(plugin="raising", status="RETRYING").exists())
        failed = await Delivery.get(plugin="raising")
        assert "RuntimeError: boom" in (failed.error or "")
        hung = await Delivery.get(plugin="hanging")
        assert "timed out" in (hung.error or "")


async def test_failures_retry_until_success(db: Database) -> None:
    Flaky.failures_left = 2
    async with running_host({"flaky": Flaky}) as host:
        result = await host.emitter.emit(EmitRequest("session.created", SESSION))
        await until(lambda: all_final(result.event.id))
    delivery = await Delivery.get(event_id=result.event.id)
    assert (delivery.status, delivery.attempts, delivery.result) == ("SUCCEEDED", 3, {"ok": 1})


async def test_the_last_failed_attempt_is_dead_and_redelivery_tries_again(db: Database) -> None:
    async with running_host({"raising": Raising}, max_attempts=3) as host:
        result = await host.emitter.emit(EmitRequest("session.created", SESSION))
        await until(lambda: all_final(result.event.id))
        dead = await Delivery.get(event_id=result.event.id)
        assert (dead.status, dead.attempts) == ("DEAD", 3)
        again = await host.redeliver(dead.id)
        assert again.status == "PENDING"
        await until(lambda: all_final(result.event.id))
        assert (await Delivery.get(id=dead.id)).attempts == 4


async def test_plugins_without_the_permission_get_no_delivery(db: Database) -> None:
    async with running_host({"blind": Blind, "recorder": Recorder}) as host:
        result = await host.emitter.emit(EmitRequest("session.created", SESSION))
    assert [d.plugin for d in result.deliveries] == ["recorder"]


async def test_the_same_idempotency_key_returns_the_same_event_once(db: Database) -> None:
    async with running_host({"recorder": Recorder}) as host:
        request = EmitRequest("session.created", SESSION, idempotency_key="k-1")
        results = await asyncio.gather(*(host.emitter.emit(request) for _ in range(10)))
    assert len({r.event.id for r in results}) == 1
    assert sorted(r.duplicate for r in results) == [False] + [True] * 9
    assert await Delivery.filter(event_id=results[0].event.id).count() == 1


class Timed(Plugin):
    seen: list[Any] = []

    async def on_user_created(self, ctx: PluginContext, user: Mapping[str, Any]) -> None:
        Timed.seen.append(ctx.event)


class Throttled(Plugin):
    async def on_session_created(self, ctx: PluginContext, session: Mapping[str, Any]) -> None:
        raise RetryLater("slow down", after=0)


async def test_event_hooks_see_the_event_they_handle(db: Database) -> None:
    Timed.seen = []
    async with running_host({"timed": Timed}) as host:
        result = await host.emitter.emit(EmitRequest("user.created", {"id": "u1"}, wait=True))
    event = Timed.seen[0]
    assert event.id == str(result.event.id) and event.type == "user.created"
    assert event.occurred_at is not None
    assert event.attributes["deliveryId"] == str(result.deliveries[0].id)


async def test_a_vendor_asking_to_slow_down_does_not_open_the_breaker(db: Database) -> None:
    async with running_host({"throttled": Throttled}, max_attempts=12) as host:
        result = await host.emitter.emit(EmitRequest("session.created", SESSION))
        await until(lambda: all_final(result.event.id))
        assert host.loaded["throttled"].worker.breaker.failures == 0
        assert host.loaded["throttled"].status == "ACTIVE"


class SessionsOnly(Plugin):
    MANIFEST = manifest("sessions-only", permissions=["sessions:read"])
    seen: list[dict[str, Any]] = []

    async def on_session_created(self, ctx: PluginContext, session: Mapping[str, Any]) -> None:
        SessionsOnly.seen.append(dict(session))


async def test_personal_fields_are_hidden_from_plugins_without_users_read(db: Database) -> None:
    SessionsOnly.seen = []
    Recorder.calls = []
    payload = {**SESSION, "email": "john@example.com", "fullName": "John Doe"}
    async with running_host({"sessions-only": SessionsOnly, "recorder": Recorder}) as host:
        await host.emitter.emit(EmitRequest("session.created", payload, wait=True))
    assert "email" not in SessionsOnly.seen[0] and "fullName" not in SessionsOnly.seen[0]
    assert SessionsOnly.seen[0]["userId"] == "john.doe"
    assert Recorder.calls[0][1]["email"] == "john@example.com"

"""runtime.sdk.testing: plugins run in-process against sample events, with a recording context."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import plugins.webhook
from plugins.webhook.plugin import WebhookPlugin
from runtime.core.address_policy import AddressPolicy
from runtime.sdk import Event, PermanentFailure, Plugin, PluginContext, RetryLater, Skip
from runtime.sdk.event_catalog import LIFECYCLE_TYPES
from runtime.sdk.testing import (
    SAMPLE_PAYLOADS,
    FakeHttp,
    FakeResponse,
    MemoryStore,
    PluginHarness,
    sample_payload,
)

WEBHOOK_DIR = Path(plugins.webhook.__file__).parent


class Everything(Plugin):
    async def on_load(self, ctx: PluginContext) -> None:
        ctx.log.info("loaded", channel=ctx.config.get("channel"))
        ctx.scheduler.every(60, self.report, name="report")
        ctx.scheduler.cron("*/5 * * * *", self.report, name="often")
        ctx.api.action("ping", self.ping)
        ctx.ui.add("dashboard.widgets", "Counter", title="Sessions", color="blue")

    async def report(self) -> None:
        self.reported = True

    async def ping(self, arguments: Mapping[str, Any]) -> Mapping[str, Any]:
        return {"pong": arguments.get("n")}

    async def on_session_created(
        self, ctx: PluginContext, session: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        assert ctx.event is not None and ctx.event.type == "session.created"
        async with ctx.http.post("https://example.com/hook", json={"id": session["id"]}) as r:
            body = await r.json()
        await ctx.events.publish("noticed", {"session": session["id"]})
        return {"status": r.status, "body": body, "user": session["userId"]}

    async def on_session_stopped(self, ctx: PluginContext, session: Mapping[str, Any]) -> None:
        raise Skip("not interested")

    async def on_session_deleted(self, ctx: PluginContext, session: Mapping[str, Any]) -> None:
        raise RetryLater("busy", after=30)

    async def on_user_deleted(self, ctx: PluginContext, user: Mapping[str, Any]) -> None:
        raise PermanentFailure("gone")

    async def on_user_login(self, ctx: PluginContext, user: Mapping[str, Any]) -> None:
        raise RuntimeError("boom")

    async def on_event(self, ctx: PluginContext, event: Event) -> Mapping[str, Any]:
        return {"type": event.type, "attempt": event.attributes["attempt"]}


async def test_a_hook_runs_with_every_service_recorded() -> None:
    harness = PluginHarness(
        Everything,
        config={"channel": "#ops"},
        name="everything",
        permissions=["sessions:read", "events:publish"],
    )
    harness.http.queue(201, json={"accepted": True})
    async with harness:
        assert harness.jobs == ["often", "report"]
        assert harness.ui.extensions[0].component == "Counter"
        assert await harness.call_action("ping", {"n": 3}) == {"pong": 3}
        await harness.run_job("report")
        outcome = await harness.emit("session.created", {"id": "s1", "user_id": "ann"})
        assert outcome.status == "SUCCEEDED" and outcome.hook == "on_session_created"
        assert outcome.result == {"status": 201, "body": {"accepted": True}, "user": "ann"}
        (request,) = harness.requests
        assert (request.method, request.url, request.json_body()) == (
            "POST",
            "https://example.com/hook",
            {"id": "s1"},
        )
        assert [(e.type, e.payload) for e in harness.published] == [
            ("everything.noticed", {"session": "s1"})
        ]
        assert harness.logs[0].data == {"channel": "#ops"}
    assert harness.jobs == [] and not harness.loaded


@pytest.mark.parametrize(
    ("event_type", "status"),
    [
        ("session.stopped", "SKIPPED"),
        ("session.deleted", "RETRYING"),
        ("user.deleted", "DEAD"),
        ("user.login", "RETRYING"),
        ("custom.thing", "SUCCEEDED"),
        ("session.started", "SUCCEEDED"),  # no specific hook: on_event takes it
    ],
)
async def test_outcomes(event_type: str, status: str) -> None:
    outcome = await PluginHarness(Everything).emit(event_type, {"id": "x"}, attempt=2)
    assert outcome.status == status, outcome
    if event_type == "session.deleted":
        assert outcome.retry_after == 30
    if event_type == "custom.thing":
        assert outcome.result == {"type": "custom.thing", "attempt": 2}


async def test_unexpected_errors_can_propagate() -> None:
    with pytest.raises(RuntimeError, match="boom"):
        await PluginHarness(Everything).emit("user.login", raise_errors=True)


async def test_permissions_decide_what_is_delivered() -> None:
    harness = PluginHarness(Everything, permissions=["users:read"])
    assert (await harness.emit("session.created")).status == "NOT_DELIVERED"
    assert (await harness.emit("user.deleted")).status == "DEAD"


async def test_publishing_needs_events_publish_as_in_the_runtime() -> None:
    harness = PluginHarness(Everything, permissions=["sessions:read"])
    outcome = await harness.emit("session.created", {"id": "s1", "user_id": "ann"})
    assert outcome.status == "RETRYING"
    assert "events:publish" in str(outcome.error)
    assert harness.published == []


def test_sample_payloads_cover_every_lifecycle_event() -> None:
    assert set(SAMPLE_PAYLOADS) == set(LIFECYCLE_TYPES)
    payload = sample_payload("session.created", user="bob")
    assert payload["userId"] == "bob" and payload["templateName"] == "firefox"
    payload["resources"]["cpu"] = "changed"
    assert SAMPLE_PAYLOADS["session.created"]["resources"]["cpu"] == "1000m"


async def test_memory_store_has_the_plugin_store_api() -> None:
    store = MemoryStore({"a": 1})
    assert await store.get("missing", 5) == 5
    await store.set("b:1", {"x": [1]})
    value = await store.get("b:1")
    value["x"].append(2)
    assert await store.get("b:1") == {"x": [1]}
    assert await store.update("n", lambda n: n + 1, default=0) == 1
    assert await store.update("n", lambda n: n + 1, default=0) == 2
    assert await store.keys() == ["a", "b:1", "n"] and await store.keys("b:") == ["b:1"]
    assert await store.delete("a") and not await store.delete("a")
    with pytest.raises(ValueError, match="JSON"):
        await store.set("bad", object())


async def test_fake_http_answers_in_order_and_raises_queued_errors() -> None:
    http = FakeHttp()
    http.queue(429, headers={"Retry-After": "7"})
    http.queue(error=aiohttp.ClientConnectionError("refused"))
    response = await http.get("https://a.example/x", params={"q": 1})
    assert response.status == 429 and response.headers["Retry-After"] == "7"
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.post("https://a.example/y", data="raw"):
            pass
    assert (await http.get("https://a.example/z")).status == 200  # the default answer
    assert [r.url for r in http.requests] == [
        "https://a.example/x",
        "https://a.example/y",
        "https://a.example/z",
    ]
    assert http.requests[1].body == b"raw"


async def test_the_webhook_plugin_runs_in_the_harness() -> None:
    harness = PluginHarness(
        WebhookPlugin,
        manifest=WEBHOOK_DIR,
        config={"url": "https://receiver.example/in", "secret": "whsec_" + "A" * 32},
    )
    harness.http.queue(503, headers={"Retry-After": "12"})
    harness.http.queue(200)
    async with harness:
        first = await harness.emit("session.created")
        second = await harness.emit("session.created")
    assert first.status == "RETRYING" and first.retry_after == 12
    assert second.status == "SUCCEEDED" and second.result["status"] == 200
    request = harness.requests[-1]
    assert request.headers["webhook-signature"].startswith("v1,")
    assert request.json_body()["type"] == "session.created"


def test_config_is_checked_against_the_manifest() -> None:
    with pytest.raises(ValueError, match="configSchema"):
        PluginHarness(WebhookPlugin, manifest=WEBHOOK_DIR, config={})


def test_the_harness_lets_a_plugin_reach_any_address_unless_given_a_policy() -> None:
    """Its HTTP is fake; what a plugin connects to itself (SMTP to a test's 127.0.0.1 server)
    goes through ctx.network, which allows everything unless the test says otherwise."""
    assert PluginHarness(Everything).ctx.network.permits(ip_address("127.0.0.1"))
    strict = PluginHarness(Everything, network=AddressPolicy()).ctx.network
    assert not strict.permits(ip_address("127.0.0.1"))
    assert strict.permits(ip_address("93.184.216.34"))


class Slow(Plugin):
    async def on_session_created(self, ctx: PluginContext, session: Mapping[str, Any]) -> None:
        await asyncio.Event().wait()  # never set: only the hook's timeout ends it


async def test_a_hook_that_overruns_its_timeout_is_retried_as_on_the_server() -> None:
    harness = PluginHarness(Slow, timeout=0.05)
    outcome = await harness.emit("session.created", {"id": "s1"})
    assert outcome.status == "RETRYING"
    assert outcome.error_message == "timed out after 0.05s"
    assert isinstance(outcome.error, TimeoutError)


async def test_raise_errors_leaves_the_sdks_outcomes_as_outcomes() -> None:
    harness = PluginHarness(Everything)
    skipped = await harness.emit("session.stopped", {"id": "s1"}, raise_errors=True)
    dead = await harness.emit("user.deleted", {"id": "u1"}, raise_errors=True)
    assert (skipped.status, skipped.result) == ("SKIPPED", {"skipped": "not interested"})
    assert (dead.status, dead.error_message) == ("DEAD", "gone")


async def test_fake_responses_read_and_fail_as_aiohttps_do() -> None:
    http = FakeHttp()
    http.queue(502, text="bad gateway")
    http.queue_answer(FakeResponse(200, b"caf\xe9"))
    async with http.get("https://vendor.example/a") as failing:
        with pytest.raises(aiohttp.ClientResponseError) as raised:
            failing.raise_for_status()
    assert raised.value.status == 502
    assert "https://vendor.example/a" in str(raised.value)  # the error reads as aiohttp's
    async with http.get("https://vendor.example/b") as latin:
        assert await latin.text(errors="replace") == "caf\ufffd"

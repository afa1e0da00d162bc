"""streamspace-pagerduty against a local stand-in for the PagerDuty Events API v2.

The stand-in checks each request as PagerDuty documents it (POST, JSON, a 32-character routing
key, the action enum, dedup_key length, the trigger payload's required fields and severity enum)
and answers as PagerDuty does (202 with status, message and dedup_key).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiohttp import web

from models import Delivery
from plugins.pagerduty.events_api import (
    MAX_DEDUP_KEY,
    MAX_SUMMARY,
    ConfigError,
    Settings,
    dedup_key,
    summary_for,
)
from runtime.core.errors import BadUserInput
from runtime.delivery.emitter import EmitRequest
from runtime.hosting.host import PluginHost
from tests.conftest import Database
from tests.plugins.conftest import VendorServer, builtin_host
from tests.runtime.hosts import all_final, until

NAME = "streamspace-pagerduty"
ROUTING_KEY = "R0123456789abcdefABCDEF012345678"
PATH = "/v2/enqueue"
SEVERITIES = {"critical", "error", "warning", "info"}
SESSION = {
    "id": "s1",
    "user": "ann",
    "template": "firefox",
    "state": "failed",
    "resources": {"memory": "2Gi", "cpu": "1000m"},
}


def accepted(dedup: str = "any") -> tuple[int, dict[str, str], str]:
    body = {"status": "success", "message": "Event processed", "dedup_key": dedup}
    return 202, {"content-type": "application/json"}, orjson.dumps(body).decode()


def pagerduty_rules(request: web.Request, body: bytes) -> None:
    """The Events API v2 rules for one request, as assertions."""
    assert request.method == "POST", f"method {request.method}"
    assert request.content_type == "application/json", request.content_type
    event = orjson.loads(body)
    assert isinstance(event, dict)
    routing_key = event.get("routing_key")
    assert isinstance(routing_key, str) and len(routing_key) == 32, "routing_key length"
    action = event.get("event_action")
    assert action in {"trigger", "acknowledge", "resolve"}, f"event_action {action!r}"
    dedup = event.get("dedup_key")
    if action != "trigger" or dedup is not None:
        assert isinstance(dedup, str) and 1 <= len(dedup) <= 255, "dedup_key"
    if action != "trigger":
        assert set(event) == {"routing_key", "event_action", "dedup_key"}, sorted(event)
        return
    payload = event.get("payload")
    assert isinstance(payload, dict), "payload is required"
    summary = payload.get("summary")
    assert isinstance(summary, str) and 1 <= len(summary) <= 1024, "payload.summary"
    assert isinstance(payload.get("source"), str) and payload["source"], "payload.source"
    assert payload.get("severity") in SEVERITIES, f"payload.severity {payload.get('severity')!r}"
    if "timestamp" in payload:
        datetime.fromisoformat(payload["timestamp"])
    if "custom_details" in payload:
        assert isinstance(payload["custom_details"], dict), "payload.custom_details"
    for name in ("component", "group", "class"):
        assert isinstance(payload.get(name, ""), str), f"payload.{name}"
    assert isinstance(event.get("client", ""), str), "client"


@pytest.fixture
def pagerduty(vendor: VendorServer) -> VendorServer:
    vendor.check = pagerduty_rules
    return vendor


def config(vendor: VendorServer, **extra: Any) -> dict[str, Any]:
    return {"routingKey": ROUTING_KEY, "eventsUrl": vendor.url + PATH, **extra}


def sent(vendor: VendorServer) -> list[dict[str, Any]]:
    return [request.json() for request in vendor.requests]


async def emit(host: PluginHost, event_type: str, payload: dict[str, Any], **extra: Any) -> str:
    """Emit and wait until the plugin's delivery is final; its status."""
    result = await host.emitter.emit(EmitRequest(event_type, payload, **extra))
    await until(lambda: all_final(result.event.id))
    delivery = await Delivery.get(event_id=result.event.id, plugin=NAME)
    return str(delivery.status)


async def test_a_session_error_triggers_an_incident_with_severity_and_details(
    db: Database, pagerduty: VendorServer
) -> None:
    pagerduty.answers = [accepted("streamspace/session/s1")]
    async with builtin_host(NAME, config(pagerduty, clientUrl="https://streamspace.test/")) as host:
        result = await host.emitter.emit(
            EmitRequest(
                "session.error",
                {**SESSION, "error": "container OOMKilled", "stack": "trace"},
                occurred_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
                wait=True,
            )
        )
    [delivery] = result.deliveries
    assert delivery.status == "SUCCEEDED"
    assert delivery.result["action"] == "trigger"
    assert delivery.result["dedupKey"] == "streamspace/session/s1"
    assert delivery.result["message"] == "Event processed"
    [request] = pagerduty.requests
    assert request.path == PATH
    body = request.json()
    assert body["routing_key"] == ROUTING_KEY
    assert body["event_action"] == "trigger"
    assert body["dedup_key"] == "streamspace/session/s1"
    assert body["client"] == "StreamSpace"
    assert body["client_url"] == "https://streamspace.test/"
    payload = body["payload"]
    assert payload["summary"] == (
        "Session Error: session s1 of ann (firefox) — container OOMKilled"
    )
    assert payload["severity"] == "error"
    assert payload["source"] == "streamspace"
    assert datetime.fromisoformat(payload["timestamp"]) == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert (payload["component"], payload["group"], payload["class"]) == (
        "firefox",
        "session",
        "session.error",
    )
    details = payload["custom_details"]
    assert details["error"] == "container OOMKilled"
    assert details["stack"] == "trace"
    assert details["userId"] == "ann"  # normalised at emit, one spelling kept
    assert "user_id" not in details and "template_name" not in details
    assert details["resources"] == {"memory": "2Gi", "cpu": "1000m"}
    assert details["eventType"] == "session.error"
    assert details["eventId"] == str(result.event.id)


async def test_the_session_starting_again_resolves_the_same_incident(
    db: Database, pagerduty: VendorServer
) -> None:
    pagerduty.answers = [accepted(), accepted()]
    async with builtin_host(NAME, config(pagerduty)) as host:
        storage = host.loaded[NAME].context.storage
        assert await emit(host, "session.error", {**SESSION, "error": "crash"}) == "SUCCEEDED"
        assert await storage.keys("open:") == ["open:streamspace/session/s1"]
        started = await host.emitter.emit(
            EmitRequest("session.started", {**SESSION, "state": "running"}, wait=True)
        )
        assert await storage.keys("open:") == []
    [delivery] = started.deliveries
    assert delivery.status == "SUCCEEDED"
    assert delivery.result["action"] == "resolve"
    trigger, resolve = sent(pagerduty)
    assert resolve == {
        "routing_key": ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": trigger["dedup_key"],
    }


async def test_woken_resolves_a_terminated_session_and_other_sessions_are_untouched(
    db: Database, pagerduty: VendorServer
) -> None:
    async with builtin_host(NAME, config(pagerduty)) as host:
        assert await emit(host, "session.terminated", {"id": "s1", "user": "ann"}) == "SUCCEEDED"
        assert await emit(host, "session.woken", {"id": "s2", "user": "bob"}) == "SKIPPED"
        assert await emit(host, "session.woken", {"id": "s1", "user": "ann"}) == "SUCCEEDED"
    trigger, resolve = sent(pagerduty)
    assert trigger["payload"]["severity"] == "warning"
    assert (resolve["event_action"], resolve["dedup_key"]) == ("resolve", trigger["dedup_key"])


async def test_types_in_neither_list_are_skipped(db: Database, pagerduty: VendorServer) -> None:
    async with builtin_host(NAME, config(pagerduty)) as host:
        login = await host.emitter.emit(EmitRequest("user.login", {"id": "u1"}, wait=True))
        heartbeat = await host.emitter.emit(
            EmitRequest("session.heartbeat", {"id": "s1", "cpu_usage": 0.5}, wait=True)
        )
    assert [d.status for d in login.deliveries + heartbeat.deliveries] == ["SKIPPED", "SKIPPED"]
    assert "triggerOn" in str(login.deliveries[0].result)
    assert pagerduty.requests == []


async def test_a_recovery_without_an_open_incident_is_skipped(
    db: Database, pagerduty: VendorServer
) -> None:
    async with builtin_host(NAME, config(pagerduty)) as host:
        result = await host.emitter.emit(EmitRequest("session.started", SESSION, wait=True))
    [delivery] = result.deliveries
    assert delivery.status == "SKIPPED"
    assert "no open incident" in str(delivery.result)
    assert pagerduty.requests == []


async def test_a_failure_older_than_its_recovery_opens_no_incident(
    db: Database, pagerduty: VendorServer
) -> None:
    """Deliveries may run out of order: a failure retried after its session recovered."""
    now = datetime.now(UTC)
    async with builtin_host(NAME, config(pagerduty)) as host:
        assert await emit(host, "session.started", SESSION, occurred_at=now) == "SKIPPED"
        older = now - timedelta(seconds=5)
        assert await emit(host, "session.error", SESSION, occurred_at=older) == "SKIPPED"
        # A failure after the recovery is a new problem and is paged.
        newer = now + timedelta(seconds=5)
        assert await emit(host, "session.error", SESSION, occurred_at=newer) == "SUCCEEDED"
        # The recovery marker is forgotten once no retried trigger can need it.
        await emit(host, "session.started", {"id": "s9"}, occurred_at=now)
        plugin = host.loaded[NAME]
        forget = plugin.instance.forget_old_recoveries  # type: ignore[attr-defined]
        assert await forget(plugin.context, now + timedelta(minutes=30)) == 0
        assert await forget(plugin.context, now + timedelta(hours=2)) == 1
    assert [body["event_action"] for body in sent(pagerduty)] == ["trigger"]


async def test_quota_and_audit_events_trigger_with_their_mapped_severities(
    db: Database, pagerduty: VendorServer
) -> None:
    async with builtin_host(
        NAME, config(pagerduty, severityMap={"quota.exceeded": "info"}, source="ss.example.com")
    ) as host:
        quota = {"userId": "ann", "resource": "memory", "limit": "4Gi", "used": "5Gi"}
        audit = {"id": "v7", "userId": "bob", "violation": "clipboard copy of secret data"}
        assert await emit(host, "quota.exceeded", quota) == "SUCCEEDED"
        assert await emit(host, "audit.violation", audit) == "SUCCEEDED"
    quota_body, audit_body = sent(pagerduty)
    assert quota_body["dedup_key"] == "streamspace/quota/ann"
    assert quota_body["payload"]["severity"] == "info"
    assert quota_body["payload"]["summary"] == "Quota Exceeded: user ann"
    assert quota_body["payload"]["source"] == "ss.example.com"
    assert quota_body["payload"]["custom_details"]["limit"] == "4Gi"
    # Not in the configured map: the default severity applies.
    assert audit_body["payload"]["severity"] == "warning"
    assert audit_body["payload"]["summary"] == (
        "Audit Violation: user bob — clipboard copy of secret data"
    )


async def test_acknowledge_on_configured_types(db: Database, pagerduty: VendorServer) -> None:
    async with builtin_host(NAME, config(pagerduty, acknowledgeOn=["session.hibernated"])) as host:
        assert await emit(host, "session.error", SESSION) == "SUCCEEDED"
        assert await emit(host, "session.hibernated", SESSION) == "SUCCEEDED"
        assert await emit(host, "session.started", SESSION) == "SUCCEEDED"
    assert [body["event_action"] for body in sent(pagerduty)] == [
        "trigger",
        "acknowledge",
        "resolve",
    ]
    assert len({body["dedup_key"] for body in sent(pagerduty)}) == 1


async def test_a_rate_limited_event_is_retried_after_retry_after(
    db: Database, pagerduty: VendorServer
) -> None:
    pagerduty.answers = [
        (429, {"Retry-After": "0"}, '{"status":"throttle event","message":"Requests throttled"}'),
        accepted(),
    ]
    async with builtin_host(NAME, config(pagerduty)) as host:
        result = await host.emitter.emit(EmitRequest("session.error", SESSION))
        await until(lambda: all_final(result.event.id))
    delivery = await Delivery.get(event_id=result.event.id)
    assert (delivery.status, delivery.attempts) == ("SUCCEEDED", 2)
    first, second = sent(pagerduty)
    assert first == second  # the same event, the same dedup key


async def test_a_server_error_is_retried(db: Database, pagerduty: VendorServer) -> None:
    pagerduty.answers = [(500, {}, "Internal Server Error"), (503, {}, ""), accepted()]
    async with builtin_host(NAME, config(pagerduty)) as host:
        result = await host.emitter.emit(EmitRequest("audit.violation", {"id": "v1"}))
        await until(lambda: all_final(result.event.id))
    delivery = await Delivery.get(event_id=result.event.id)
    assert (delivery.status, delivery.attempts) == ("SUCCEEDED", 3)


async def test_an_invalid_event_is_dead_with_pagerduty_errors(
    db: Database, pagerduty: VendorServer
) -> None:
    invalid = {
        "status": "invalid event",
        "message": "Event object is invalid",
        "errors": ["Length of 'routing_key' is incorrect (should be 32 characters)"],
    }
    pagerduty.answers = [
        (400, {"content-type": "application/json"}, orjson.dumps(invalid).decode())
    ]
    async with builtin_host(NAME, config(pagerduty)) as host:
        result = await host.emitter.emit(EmitRequest("session.error", SESSION))
        await until(lambda: all_final(result.event.id))
        assert await host.loaded[NAME].context.storage.keys("open:") == []
    delivery = await Delivery.get(event_id=result.event.id)
    assert (delivery.status, delivery.attempts) == ("DEAD", 1)
    assert "Event object is invalid" in (delivery.error or "")
    assert "should be 32 characters" in (delivery.error or "")


async def test_the_events_url_is_configurable(db: Database, pagerduty: VendorServer) -> None:
    async with builtin_host(
        NAME, {"routingKey": ROUTING_KEY, "eventsUrl": pagerduty.url + "/eu/v2/enqueue"}
    ) as host:
        assert await emit(host, "session.error", SESSION) == "SUCCEEDED"
    assert [request.path for request in pagerduty.requests] == ["/eu/v2/enqueue"]


async def test_the_connection_test_triggers_and_resolves_an_info_incident(
    db: Database, pagerduty: VendorServer
) -> None:
    pagerduty.answers = [accepted(), accepted()]
    async with builtin_host(NAME, config(pagerduty)) as host:
        result = await host.test_plugin(NAME)
    assert result is not None and result["ok"] is True
    trigger, resolve = sent(pagerduty)
    assert trigger["event_action"] == "trigger"
    assert trigger["payload"]["severity"] == "info"
    assert "connection test" in trigger["payload"]["summary"]
    assert resolve["event_action"] == "resolve"
    assert resolve["dedup_key"] == trigger["dedup_key"] == result["dedupKey"]


async def test_a_failed_connection_test_reports_why(db: Database, pagerduty: VendorServer) -> None:
    pagerduty.answers = [(403, {}, '{"status":"Forbidden","message":"Forbidden"}')]
    async with builtin_host(NAME, config(pagerduty)) as host:
        result = await host.test_plugin(NAME)
    assert result is not None and result["ok"] is False
    assert "403" in result["message"]
    assert len(pagerduty.requests) == 1


def test_the_vendor_rules_refuse_what_pagerduty_refuses() -> None:
    """The stand-in's rules themselves, so a passing test means a request PagerDuty takes."""

    class Request:
        method = "POST"
        content_type = "application/json"

    trigger = {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "payload": {"summary": "x", "source": "s", "severity": "error"},
    }
    pagerduty_rules(Request(), orjson.dumps(trigger))  # type: ignore[arg-type]
    refused = [
        {**trigger, "routing_key": "short"},
        {**trigger, "event_action": "open"},
        {**trigger, "dedup_key": "k" * 256},
        {**trigger, "payload": {"summary": "x", "source": "s", "severity": "fatal"}},
        {**trigger, "payload": {"summary": "x", "severity": "error"}},
        {"routing_key": ROUTING_KEY, "event_action": "resolve"},
    ]
    for body in refused:
        with pytest.raises(AssertionError):
            pagerduty_rules(Request(), orjson.dumps(body))  # type: ignore[arg-type]


async def test_the_configuration_is_validated(db: Database) -> None:
    with pytest.raises(BadUserInput) as raised:
        async with builtin_host(NAME, {"routingKey": "short", "defaultSeverity": "fatal"}):
            pass
    paths = {problem.path for problem in raised.value.fields}
    assert paths == {"routingKey", "defaultSeverity"}
    # Checked at load: one type cannot both trigger and resolve.
    with pytest.raises(ConfigError, match=r"session\.error cannot be in both"):
        Settings.of({"routingKey": ROUTING_KEY, "resolveOn": ["session.error"]})
    with pytest.raises(ConfigError, match="unknown placeholders: host"):
        Settings.of({"routingKey": ROUTING_KEY, "dedupKeyTemplate": "x/{host}"})


async def test_a_plugin_with_overlapping_lists_fails_to_load(
    db: Database, pagerduty: VendorServer
) -> None:
    async with builtin_host(NAME, config(pagerduty, triggerOn=["session.started"])) as host:
        assert NAME not in host.loaded
        with pytest.raises(LookupError):
            await host.test_plugin(NAME)


def test_dedup_keys_and_summaries_keep_pagerduty_limits() -> None:
    long_id = "s" * 400
    key = dedup_key("streamspace/{family}/{subject}", "session.error", {"id": long_id}, "e1")
    assert len(key) == MAX_DEDUP_KEY
    assert key == dedup_key(
        "streamspace/{family}/{subject}", "session.started", {"id": long_id}, "e2"
    )
    assert key != dedup_key(
        "streamspace/{family}/{subject}", "session.error", {"id": "t" * 400}, "e"
    )
    # Without a subject in the payload, the event is its own incident.
    assert dedup_key("{family}:{subject}", "audit.violation", {}, "42") == "audit:42"
    summary = summary_for("session.error", {"id": "s1", "error": "x" * 5000})
    assert len(summary) == MAX_SUMMARY and summary.endswith("…")

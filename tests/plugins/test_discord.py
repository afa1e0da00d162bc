"""streamspace-discord against a local stand-in for Discord's execute-webhook endpoint.

The stand-in's `check` holds Discord's documented rules for the request (wait=true, JSON, embed
shape and limits, mentions locked down); a request that breaks one is answered 400 and fails
the test.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiohttp import web

from models import Delivery
from plugins.discord.messages import (
    EMBED_TOTAL_LIMIT,
    FIELD_VALUE_LIMIT,
    embed,
    held_back_note,
)
from runtime.catalog.installs import PluginSchema
from runtime.core.errors import BadUserInput
from runtime.delivery.emitter import EmitRequest
from runtime.hosting.context import PluginStore
from runtime.hosting.registry import PluginRegistry, discover_builtins
from runtime.sdk import NoticeField
from tests.conftest import Database
from tests.plugins.conftest import VendorServer, builtin_host
from tests.runtime.hosts import all_final, until

NAME = "streamspace-discord"
TOKEN = "s3cr3t-T0ken_abcdef"
COLOURS = {0x2EB67D, 0xECB22E, 0xE01E5A, 0x36C5F0}
ALL_SWITCHES = {
    key: True
    for key in (
        "notifyOnSessionCreated",
        "notifyOnSessionStarted",
        "notifyOnSessionStopped",
        "notifyOnSessionHibernated",
        "notifyOnSessionWoken",
        "notifyOnSessionDeleted",
        "notifyOnUserCreated",
        "notifyOnUserUpdated",
        "notifyOnUserDeleted",
        "notifyOnUserLogin",
        "notifyOnUserLogout",
    )
}
SESSION = {
    "id": "admin-firefox-browser-abc123",
    "user": "john.doe",
    "template": "firefox-browser",
    "state": "running",
    "resources": {"memory": "512Mi", "cpu": "250m"},
}
USER = {
    "id": "u1",
    "username": "john.doe",
    "email": "john@example.com",
    "fullName": "John Doe",
    "role": "admin",
}
EXPECTED_TITLES = {
    "session.created": "🚀 New Session Created",
    "session.started": "▶️ Session Started",
    "session.stopped": "⏹️ Session Stopped",
    "session.hibernated": "💤 Session Hibernated",
    "session.woken": "☀️ Session Woken",
    "session.deleted": "🗑️ Session Deleted",
    "user.created": "👤 New User Created",
    "user.updated": "✏️ User Updated",
    "user.deleted": "🗑️ User Deleted",
    "user.login": "🔑 User Logged In",
    "user.logout": "👋 User Logged Out",
}


def discord_rules(request: web.Request, body: bytes) -> None:
    """Discord's execute-webhook rules as the tests hold the plugin to them."""
    assert request.method == "POST"
    assert request.path == f"/api/webhooks/123456/{TOKEN}"
    assert request.query.get("wait") == "true", "wait=true is missing"
    assert request.headers["Content-Type"].split(";")[0] == "application/json"
    message = orjson.loads(body)
    known = {"content", "username", "avatar_url", "tts", "embeds", "allowed_mentions"}
    assert set(message) <= known, f"unknown keys {set(message) - known}"
    assert message["allowed_mentions"] == {"parse": []}, "mentions are not locked down"
    assert message.get("content") or message.get("embeds"), "an empty message"
    if "content" in message:
        assert isinstance(message["content"], str) and len(message["content"]) <= 2000
    if "username" in message:
        name = message["username"]
        assert isinstance(name, str) and 1 <= len(name) <= 80
        assert "discord" not in name.lower() and "clyde" not in name.lower()
    embeds = message["embeds"]
    assert isinstance(embeds, list) and 1 <= len(embeds) <= 10
    for item in embeds:
        assert isinstance(item["title"], str) and 0 < len(item["title"]) <= 256
        assert len(item.get("description", "")) <= 4096
        assert isinstance(item["color"], int) and item["color"] in COLOURS
        stamp = datetime.fromisoformat(item["timestamp"])
        assert stamp.tzinfo is not None, "timestamp without a time zone"
        assert item["footer"] == {"text": "StreamSpace"}
        fields = item["fields"]
        assert isinstance(fields, list) and len(fields) <= 25
        total = len(item["title"]) + len(item.get("description", "")) + len("StreamSpace")
        for field in fields:
            assert set(field) == {"name", "value", "inline"}
            assert isinstance(field["name"], str) and 1 <= len(field["name"]) <= 256
            assert isinstance(field["value"], str) and 1 <= len(field["value"]) <= 1024
            assert isinstance(field["inline"], bool)
            total += len(field["name"]) + len(field["value"])
        assert total <= 6000, "embed over 6000 characters"


def message_answer(message_id: str = "1100000000000000001") -> tuple[int, dict[str, str], str]:
    """What Discord answers to an accepted execute with wait=true: the created message."""
    return 200, {"Content-Type": "application/json"}, orjson.dumps({"id": message_id}).decode()


@pytest.fixture
def discord(vendor: VendorServer) -> VendorServer:
    vendor.check = discord_rules
    return vendor


def arrival_times(vendor: VendorServer) -> list[float]:
    """Wraps the vendor's check to note when each request arrived (monotonic seconds)."""
    times: list[float] = []
    check = vendor.check

    def timed(request: web.Request, body: bytes) -> Any:
        times.append(time.monotonic())
        return check(request, body) if check else None

    vendor.check = timed
    return times


def config_for(vendor: VendorServer, **extra: Any) -> dict[str, Any]:
    return {"webhookUrl": f"{vendor.url}/api/webhooks/123456/{TOKEN}", **extra}


def payload_for(event_type: str) -> dict[str, Any]:
    return dict(SESSION if event_type.startswith("session.") else USER)


def sent_messages(vendor: VendorServer) -> list[dict[str, Any]]:
    return [request.json() for request in vendor.requests]


def fields_of(message: dict[str, Any]) -> dict[str, str]:
    return {field["name"]: field["value"] for field in message["embeds"][0]["fields"]}


async def rate_window() -> dict[str, Any]:
    return dict(await PluginStore(NAME).get("rate-window") or {})


# -- end to end --------------------------------------------------------------------------


async def test_every_lifecycle_event_arrives_as_an_embed(
    db: Database, discord: VendorServer
) -> None:
    discord.answers = [message_answer(str(1000 + index)) for index in range(11)]
    config = config_for(
        discord,
        username="StreamSpace Bot",
        avatarUrl="https://cdn.example.com/streamspace.png",
        includeDetails=True,
        **ALL_SWITCHES,
    )
    before = datetime.now(UTC) - timedelta(seconds=1)
    async with builtin_host(NAME, config) as host:
        for event_type in EXPECTED_TITLES:
            result = await host.emitter.emit(
                EmitRequest(event_type, payload_for(event_type), wait=True)
            )
            assert [d.status for d in result.deliveries] == ["SUCCEEDED"], event_type
            assert result.deliveries[0].result["messageId"] is not None
    messages = sent_messages(discord)
    assert [m["embeds"][0]["title"] for m in messages] == list(EXPECTED_TITLES.values())
    for message in messages:
        assert message["username"] == "StreamSpace Bot"
        assert message["avatar_url"] == "https://cdn.example.com/streamspace.png"
        assert "content" not in message
        moment = datetime.fromisoformat(message["embeds"][0]["timestamp"])
        assert before <= moment <= datetime.now(UTC)
    created, hibernated, deleted = messages[0], messages[3], messages[5]
    assert created["embeds"][0]["color"] == 0x2EB67D
    assert hibernated["embeds"][0]["color"] == 0xECB22E
    assert deleted["embeds"][0]["color"] == 0xE01E5A
    assert messages[10]["embeds"][0]["color"] == 0x36C5F0
    assert created["embeds"][0]["fields"] == [
        {"name": "User", "value": "john.doe", "inline": True},
        {"name": "Template", "value": "firefox-browser", "inline": True},
        {"name": "Session ID", "value": "admin-firefox-browser-abc123", "inline": False},
        {"name": "Memory", "value": "512Mi", "inline": True},
        {"name": "CPU", "value": "250m", "inline": True},
    ]
    assert fields_of(messages[6]) == {
        "Username": "john.doe",
        "Email": "john@example.com",
        "Name": "John Doe",
        "Role": "admin",
    }


async def test_events_switched_off_are_skipped_and_defaults_apply(
    db: Database, discord: VendorServer
) -> None:
    async with builtin_host(NAME, config_for(discord, notifyOnUserCreated=False)) as host:
        started = await host.emitter.emit(EmitRequest("session.started", SESSION, wait=True))
        user = await host.emitter.emit(EmitRequest("user.created", USER, wait=True))
        created = await host.emitter.emit(EmitRequest("session.created", SESSION, wait=True))
    assert [d.status for d in started.deliveries] == ["SKIPPED"]
    assert started.deliveries[0].result == {"skipped": "notifyOnSessionStarted is off"}
    assert [d.status for d in user.deliveries] == ["SKIPPED"]
    assert [d.status for d in created.deliveries] == ["SUCCEEDED"]
    assert [m["embeds"][0]["title"] for m in sent_messages(discord)] == ["🚀 New Session Created"]
    # Without includeDetails, no resources; the default username is used.
    message = sent_messages(discord)[0]
    assert set(fields_of(message)) == {"User", "Template", "Session ID"}
    assert message["username"] == "StreamSpace"
    assert "avatar_url" not in message


async def test_long_values_are_truncated_to_discords_limits(
    db: Database, discord: VendorServer
) -> None:
    session = {**SESSION, "id": "s" * 3000, "user": "u" * 1500, "template": "t" * 1100}
    async with builtin_host(NAME, config_for(discord)) as host:
        result = await host.emitter.emit(EmitRequest("session.created", session, wait=True))
    assert [d.status for d in result.deliveries] == ["SUCCEEDED"]
    fields = fields_of(sent_messages(discord)[0])
    assert fields["User"] == "u" * (FIELD_VALUE_LIMIT - 1) + "…"
    assert fields["Session ID"] == "s" * (FIELD_VALUE_LIMIT - 1) + "…"


async def test_mentions_in_payload_text_never_ping(db: Database, discord: VendorServer) -> None:
    user = {**USER, "username": "@everyone", "fullName": "@here <@80351110224678912>"}
    async with builtin_host(NAME, config_for(discord)) as host:
        result = await host.emitter.emit(EmitRequest("user.created", user, wait=True))
    assert [d.status for d in result.deliveries] == ["SUCCEEDED"]
    message = sent_messages(discord)[0]
    assert message["allowed_mentions"] == {"parse": []}
    # Shown as written: nothing is mangled, Discord is told to ping no one.
    assert fields_of(message)["Username"] == "@everyone"
    assert fields_of(message)["Name"] == "@here <@80351110224678912>"


# -- Discord's rate limits and answers ---------------------------------------------------


async def test_a_429_is_retried_after_the_bodys_retry_after(
    db: Database, discord: VendorServer
) -> None:
    # retry_after in the body (float seconds) is the precise figure; the whole-second
    # Retry-After header of 30 would outlast the test's deadline if it were used instead.
    limited = orjson.dumps(
        {"message": "You are being rate limited.", "retry_after": 0.3, "global": False}
    ).decode()
    headers = {"Retry-After": "30", "X-RateLimit-Scope": "user"}
    discord.answers = [(429, headers, limited), message_answer()]
    times = arrival_times(discord)
    async with builtin_host(NAME, config_for(discord)) as host:
        result = await host.emitter.emit(EmitRequest("session.created", SESSION))
        await until(lambda: all_final(result.event.id))
    delivery = await Delivery.get(event_id=result.event.id)
    assert (delivery.status, delivery.attempts) == ("SUCCEEDED", 2)
    assert times[1] - times[0] >= 0.25
    first, retried = sent_messages(discord)
    # The same message; only the embed's time may differ (see the plugin: the specific hooks
    # do not receive the event's occurredAt, so an attempt stamps its own time).
    first["embeds"][0].pop("timestamp"), retried["embeds"][0].pop("timestamp")
    assert first == retried
    # The failed attempt gave its hourly slot back: one message counted.
    assert (await rate_window())["sent"] == 1


async def test_an_exhausted_bucket_is_waited_for_before_the_next_send(
    db: Database, discord: VendorServer
) -> None:
    exhausted = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "0.5"}
    discord.answers = [(200, exhausted, '{"id": "1"}'), message_answer("2")]
    times = arrival_times(discord)
    async with builtin_host(NAME, config_for(discord)) as host:
        first = await host.emitter.emit(EmitRequest("session.created", SESSION, wait=True))
        second = await host.emitter.emit(EmitRequest("session.deleted", SESSION, wait=True))
    assert [d.status for d in first.deliveries + second.deliveries] == ["SUCCEEDED"] * 2
    # No request was spent on a 429: the second waited for the bucket to reset.
    assert len(discord.requests) == 2
    assert times[1] - times[0] >= 0.45


async def test_a_bucket_resetting_later_defers_the_delivery_without_sending(
    db: Database, discord: VendorServer
) -> None:
    exhausted = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "60"}
    discord.answers = [(200, exhausted, '{"id": "1"}')]
    async with builtin_host(NAME, config_for(discord)) as host:
        await host.emitter.emit(EmitRequest("session.created", SESSION, wait=True))
        result = await host.emitter.emit(EmitRequest("session.deleted", SESSION))

        async def deferred() -> bool:
            delivery = await Delivery.get(event_id=result.event.id)
            return delivery.status == "RETRYING"

        await until(deferred)
    delivery = await Delivery.get(event_id=result.event.id)
    assert "rate limit" in (delivery.error or "")
    assert delivery.next_attempt_at is not None
    wait = (delivery.next_attempt_at - datetime.now(UTC)).total_seconds()
    assert 50 < wait <= 60
    assert len(discord.requests) == 1
    # A deferred delivery holds no slot of the hourly limit.
    assert (await rate_window())["sent"] == 1


async def test_an_unknown_webhook_is_dead_with_discords_message(
    db: Database, discord: VendorServer
) -> None:
    discord.answers = [(404, {}, '{"message": "Unknown Webhook", "code": 10015}')]
    async with builtin_host(NAME, config_for(discord)) as host:
        result = await host.emitter.emit(EmitRequest("user.created", USER))
        await until(lambda: all_final(result.event.id))
    delivery = await Delivery.get(event_id=result.event.id)
    assert (delivery.status, delivery.attempts) == ("DEAD", 1)
    assert delivery.error == "Discord answered HTTP 404: Unknown Webhook (code 10015)"
    assert TOKEN not in delivery.error
    assert (await rate_window())["sent"] == 0


async def test_an_invalid_body_answer_is_final_and_names_the_fields(
    db: Database, discord: VendorServer
) -> None:
    refused = {
        "code": 50035,
        "errors": {"embeds": {"0": {"title": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH"}]}}}},
        "message": "Invalid Form Body",
    }
    discord.answers = [(400, {}, orjson.dumps(refused).decode())]
    async with builtin_host(NAME, config_for(discord)) as host:
        result = await host.emitter.emit(EmitRequest("user.created", USER, wait=True))
    delivery = result.deliveries[0]
    assert delivery.status == "DEAD"
    assert "Invalid Form Body (code 50035)" in (delivery.error or "")
    assert "BASE_TYPE_MAX_LENGTH" in (delivery.error or "")


async def test_a_server_error_is_retried(db: Database, discord: VendorServer) -> None:
    discord.answers = [(502, {}, "Bad Gateway"), message_answer()]
    async with builtin_host(NAME, config_for(discord)) as host:
        result = await host.emitter.emit(EmitRequest("session.created", SESSION))
        await until(lambda: all_final(result.event.id))
    delivery = await Delivery.get(event_id=result.event.id)
    assert (delivery.status, delivery.attempts) == ("SUCCEEDED", 2)
    assert len(discord.requests) == 2


async def test_an_unreachable_discord_is_retried_without_leaking_the_token(
    db: Database, discord: VendorServer
) -> None:
    config = {"webhookUrl": f"http://127.0.0.1:9/api/webhooks/123456/{TOKEN}"}
    async with builtin_host(NAME, config) as host:
        result = await host.emitter.emit(EmitRequest("session.created", SESSION))

        async def retrying() -> bool:
            delivery = await Delivery.get(event_id=result.event.id)
            return delivery.status == "RETRYING"

        await until(retrying)
    delivery = await Delivery.get(event_id=result.event.id)
    assert "could not be reached" in (delivery.error or "")
    assert TOKEN not in (delivery.error or "")


# -- the hourly rate limit ---------------------------------------------------------------


async def test_over_the_hourly_limit_is_counted_and_reported_in_the_next_message(
    db: Database, discord: VendorServer
) -> None:
    async with builtin_host(NAME, config_for(discord, rateLimit=2)) as host:
        statuses = []
        for _ in range(5):
            result = await host.emitter.emit(EmitRequest("session.created", SESSION, wait=True))
            statuses += [d.status for d in result.deliveries]
        assert statuses == ["SUCCEEDED"] * 2 + ["SKIPPED"] * 3
        assert len(discord.requests) == 2
        # The next hour: the first message out reports the three held back.
        window = await rate_window()
        await PluginStore(NAME).set("rate-window", {**window, "hour": "2000-01-01T00"})
        result = await host.emitter.emit(EmitRequest("user.created", USER, wait=True))
    assert result.deliveries[0].status == "SUCCEEDED"
    assert result.deliveries[0].result["heldBack"] == 3
    message = sent_messages(discord)[-1]
    assert message["content"] == "(3 more notifications were held back by the rate limit)"
    assert message["embeds"][0]["title"] == "👤 New User Created"


# -- testPlugin and configuration --------------------------------------------------------


async def test_test_plugin_posts_a_real_embed(db: Database, discord: VendorServer) -> None:
    discord.answers = [message_answer("42")]
    async with builtin_host(NAME, config_for(discord, rateLimit=1)) as host:
        result = await host.test_plugin(NAME)
    assert result is not None
    assert (result["ok"], result["status"], result["messageId"]) == (True, 200, "42")
    message = sent_messages(discord)[0]
    assert message["embeds"][0]["title"] == "✅ StreamSpace test message"
    assert fields_of(message)["Plugin"] == NAME
    # The test message is not a notification: the hourly limit is untouched.
    assert await rate_window() == {}


async def test_test_plugin_reports_a_refused_webhook(db: Database, discord: VendorServer) -> None:
    discord.answers = [(401, {}, '{"message": "Invalid Webhook Token", "code": 50027}')]
    async with builtin_host(NAME, config_for(discord)) as host:
        result = await host.test_plugin(NAME)
    assert result == {
        "ok": False,
        "message": "Discord answered HTTP 401: Invalid Webhook Token (code 50027)",
    }


def discord_schema() -> PluginSchema:
    registry = PluginRegistry()
    discover_builtins(registry)
    spec = registry.get(NAME)
    assert spec is not None
    return PluginSchema.of(spec.manifest.raw)


@pytest.mark.parametrize(
    ("config", "path"),
    [
        ({}, "webhookUrl"),
        ({"webhookUrl": "not a url"}, "webhookUrl"),
        (
            {"webhookUrl": "https://discord.com/api/webhooks/1/x", "username": "Discord Bot"},
            "username",
        ),
        ({"webhookUrl": "https://discord.com/api/webhooks/1/x", "username": "x" * 81}, "username"),
        ({"webhookUrl": "https://discord.com/api/webhooks/1/x", "rateLimit": 0}, "rateLimit"),
        (
            {"webhookUrl": "https://discord.com/api/webhooks/1/x", "notifyOnSessionCreate": True},
            "notifyOnSessionCreate",
        ),
    ],
)
async def test_configuration_is_validated(db: Database, config: dict[str, Any], path: str) -> None:
    schema = discord_schema()
    with pytest.raises(BadUserInput) as refused:
        schema.validated({**schema.defaults, **config})
    assert [problem.path for problem in refused.value.fields] == [path]


async def test_the_webhook_url_is_a_secret_and_defaults_are_complete(db: Database) -> None:
    schema = discord_schema()
    assert schema.secrets == {"webhookUrl"}
    assert set(ALL_SWITCHES) <= set(schema.defaults)
    valid = schema.validated(
        {**schema.defaults, "webhookUrl": "https://discord.com/api/webhooks/1/x"}
    )
    assert valid["rateLimit"] == 20


# -- message building --------------------------------------------------------------------


async def test_an_embed_keeps_within_the_field_count_and_total_size(db: Database) -> None:
    many = [NoticeField(f"field {index}", "v" * 1024) for index in range(40)]
    built = embed("title", "info", many, datetime.now(UTC))
    assert len(built["fields"]) <= 25
    total = len(built["title"]) + len(built["footer"]["text"])
    total += sum(len(f["name"]) + len(f["value"]) for f in built["fields"])
    assert total <= EMBED_TOTAL_LIMIT
    short = embed("t", "good", [NoticeField(str(i), "v") for i in range(40)], datetime.now(UTC))
    assert len(short["fields"]) == 25
    # Discord refuses a blank field value: a zero-width space stands in.
    blank = embed("t", "good", [NoticeField("x", "   ")], datetime.now(UTC))
    assert blank["fields"][0]["value"] == "\u200b"
    assert held_back_note(0) is None
    assert held_back_note(1) == "(1 more notification was held back by the rate limit)"
